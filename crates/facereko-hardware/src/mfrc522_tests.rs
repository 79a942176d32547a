//! The driver against a scripted SPI bus (`embedded-hal-mock`): every register access the driver makes is
//! listed in order and `.done()` fails the test if one was expected but never happened.

use embedded_hal_mock::eh1::delay::NoopDelay;
use embedded_hal_mock::eh1::spi::{Mock, Transaction as T};

use super::*;

/// Builds the expected SPI traffic, one register access at a time, in the driver's order.
#[derive(Default)]
struct Script(Vec<T<u8>>);

/// What the card (through the chip) does after a transmission.
enum Card<'a> {
    /// The chip's timer fires: nobody answered.
    Silent,
    /// A clean frame.
    Answers(&'a [u8]),
    /// A frame with `last_bits` valid bits in its last byte.
    AnswersBits(&'a [u8], u8),
    /// A frame with a collision; `coll_reg` is what CollReg reads.
    Collides(&'a [u8], u8),
    /// A frame with a collision whose byte also failed its parity check (ErrorReg 0x0A).
    CollidesWithParity(&'a [u8], u8),
    /// A frame with a CRC/parity/protocol flag in ErrorReg.
    Errors(u8),
}

impl Script {
    fn read(&mut self, reg: Reg, value: u8) -> &mut Self {
        self.0.push(T::transaction_start());
        self.0.push(T::transfer_in_place(
            vec![reg.read_addr(), 0],
            vec![0, value],
        ));
        self.0.push(T::transaction_end());
        self
    }

    fn write(&mut self, reg: Reg, value: u8) -> &mut Self {
        self.0.push(T::transaction_start());
        self.0.push(T::write_vec(vec![reg.write_addr(), value]));
        self.0.push(T::transaction_end());
        self
    }

    fn write_fifo(&mut self, data: &[u8]) -> &mut Self {
        let mut v = vec![Reg::FifoData.write_addr()];
        v.extend_from_slice(data);
        self.0.push(T::transaction_start());
        self.0.push(T::write_vec(v));
        self.0.push(T::transaction_end());
        self
    }

    fn read_fifo(&mut self, data: &[u8]) -> &mut Self {
        if data.is_empty() {
            return self;
        }
        let mut expected = vec![Reg::FifoData.read_addr(); data.len() + 1];
        expected[data.len()] = 0;
        let mut response = vec![0];
        response.extend_from_slice(data);
        self.0.push(T::transaction_start());
        self.0.push(T::transfer_in_place(expected, response));
        self.0.push(T::transaction_end());
        self
    }

    /// `init` on a chip that answers with `version`.
    fn init(&mut self, version: u8) -> &mut Self {
        self.read(Reg::Version, version)
            .write(Reg::Command, 0x0F)
            .read(Reg::Command, 0x00)
            .write(Reg::TxMode, 0x00)
            .write(Reg::RxMode, 0x00)
            .write(Reg::ModWidth, 0x26)
            .write(Reg::TMode, 0x80)
            .write(Reg::TPrescaler, 0xA9)
            .write(Reg::TReloadHigh, 0x03)
            .write(Reg::TReloadLow, 0xE8)
            .write(Reg::TxAsk, 0x40)
            .write(Reg::Mode, 0x3D)
            .write(Reg::Coll, 0x00)
            .read(Reg::TxControl, 0x80)
            .write(Reg::TxControl, 0x83)
    }

    /// One transceive: the frame `tx` goes out, then the card does `card`.
    fn transceive(&mut self, tx: &[u8], tx_last_bits: u8, rx_align: u8, card: Card) -> &mut Self {
        let framing = (rx_align << 4) | tx_last_bits;
        self.write(Reg::Command, 0x00)
            .write(Reg::ComIrq, 0x7F)
            .write(Reg::FifoLevel, 0x80)
            .write_fifo(tx)
            .write(Reg::BitFraming, framing)
            .write(Reg::Command, 0x0C)
            .write(Reg::BitFraming, framing | 0x80);
        match card {
            Card::Silent => {
                // One poll before the timer fires, to exercise the wait loop.
                self.read(Reg::ComIrq, 0x00).read(Reg::ComIrq, 0x01)
            }
            Card::Answers(data) => self.frame(data, 0, 0x00, None),
            Card::AnswersBits(data, bits) => self.frame(data, bits, 0x00, None),
            Card::Collides(data, coll) => self.frame(data, 0, 0x08, Some(coll)),
            Card::CollidesWithParity(data, coll) => self.frame(data, 0, 0x0A, Some(coll)),
            Card::Errors(err) => self.read(Reg::ComIrq, 0x30).read(Reg::Error, err),
        }
    }

    fn frame(&mut self, data: &[u8], bits: u8, err: u8, coll: Option<u8>) -> &mut Self {
        self.read(Reg::ComIrq, 0x30)
            .read(Reg::Error, err)
            .read(Reg::FifoLevel, data.len() as u8)
            .read_fifo(data)
            .read(Reg::Control, bits);
        if let Some(c) = coll {
            self.read(Reg::Coll, c);
        }
        self
    }

    fn reqa(&mut self, card: Card) -> &mut Self {
        self.transceive(&[0x26], 7, 0, card)
    }

    /// A clean anticollision + select at one level for the 4 bytes `cl` (UID bytes or CT + 3 bytes).
    fn level(&mut self, sel: u8, cl: [u8; 4], sak: u8) -> &mut Self {
        let bcc = cl[0] ^ cl[1] ^ cl[2] ^ cl[3];
        let answer = [cl[0], cl[1], cl[2], cl[3], bcc];
        self.transceive(&[sel, 0x20], 0, 0, Card::Answers(&answer));
        self.select(sel, answer, sak)
    }

    fn select(&mut self, sel: u8, uid_cl: [u8; 5], sak: u8) -> &mut Self {
        let mut tx = vec![sel, 0x70];
        tx.extend_from_slice(&uid_cl);
        let crc = crc_a(&tx);
        tx.extend_from_slice(&crc);
        let sak_crc = crc_a(&[sak]);
        let answer = [sak, sak_crc[0], sak_crc[1]];
        self.transceive(&tx, 0, 0, Card::Answers(&answer))
    }

    fn hlta(&mut self) -> &mut Self {
        self.transceive(&[0x50, 0x00, 0x57, 0xCD], 0, 0, Card::Silent)
    }

    fn driver(&self) -> Mfrc522<Mock<u8>, NoopDelay> {
        Mfrc522::new(Mock::new(&self.0), NoopDelay::new())
    }
}

fn finish(drv: Mfrc522<Mock<u8>, NoopDelay>) {
    let (mut spi, _, _) = drv.release();
    spi.done();
}

#[test]
fn crc_a_matches_the_iso_14443_3_vectors() {
    // ISO/IEC 14443-3 Annex B: 00 00 -> A0 1E; 12 34 -> 26 CF; HLTA 50 00 -> 57 CD.
    assert_eq!(crc_a(&[0x00, 0x00]), [0xA0, 0x1E]);
    assert_eq!(crc_a(&[0x12, 0x34]), [0x26, 0xCF]);
    assert_eq!(crc_a(&[0x50, 0x00]), [0x57, 0xCD]);
}

#[test]
fn init_configures_the_timer_and_switches_the_antenna_on() {
    let mut s = Script::default();
    s.init(0x92);
    let mut drv = s.driver();
    let info = drv.init().unwrap();
    assert_eq!(info.version, 0x92);
    assert_eq!(info.name(), "MFRC522 v2.0");
    finish(drv);
}

#[test]
fn reads_a_4_byte_uid_with_atqa_and_sak() {
    let mut s = Script::default();
    s.init(0x92)
        .reqa(Card::Answers(&[0x04, 0x00]))
        .level(0x93, [0x04, 0xA2, 0x2B, 0x19], 0x08)
        .hlta();
    let mut drv = s.driver();
    drv.init().unwrap();
    let tap = drv.read_card().unwrap().expect("a card");
    assert_eq!(tap.uid.to_string(), "04:A2:2B:19");
    assert_eq!(tap.atqa, Some(0x0004));
    assert_eq!(tap.sak, Some(0x08));
    finish(drv);
}

#[test]
fn reads_a_7_byte_uid_through_the_cascade_tag() {
    // An Ultralight/NTAG: UID 04:11:22:33:44:55:66, level 1 carries CT 88 + 04 11 22, SAK 0x04 (incomplete).
    let mut s = Script::default();
    s.init(0x91)
        .reqa(Card::Answers(&[0x44, 0x00]))
        .level(0x93, [0x88, 0x04, 0x11, 0x22], 0x04)
        .level(0x95, [0x33, 0x44, 0x55, 0x66], 0x00)
        .hlta();
    let mut drv = s.driver();
    drv.init().unwrap();
    let tap = drv.read_card().unwrap().expect("a card");
    assert_eq!(
        tap.uid.as_bytes(),
        &[0x04, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66]
    );
    assert_eq!(tap.atqa, Some(0x0044));
    assert_eq!(tap.sak, Some(0x00));
    finish(drv);
}

#[test]
fn reads_a_10_byte_uid_over_three_cascade_levels() {
    let mut s = Script::default();
    s.init(0x92)
        .reqa(Card::Answers(&[0x84, 0x00]))
        .level(0x93, [0x88, 0x01, 0x02, 0x03], 0x04)
        .level(0x95, [0x88, 0x04, 0x05, 0x06], 0x04)
        .level(0x97, [0x07, 0x08, 0x09, 0x0A], 0x20)
        .hlta();
    let mut drv = s.driver();
    drv.init().unwrap();
    let tap = drv.read_card().unwrap().expect("a card");
    assert_eq!(tap.uid.to_string(), "01:02:03:04:05:06:07:08:09:0A");
    assert_eq!(tap.sak, Some(0x20));
    finish(drv);
}

#[test]
fn no_card_is_none() {
    let mut s = Script::default();
    s.init(0x92).reqa(Card::Silent);
    let mut drv = s.driver();
    drv.init().unwrap();
    assert_eq!(drv.read_card().unwrap(), None);
    finish(drv);
}

#[test]
fn a_sak_with_a_bad_crc_is_a_crc_error() {
    let mut s = Script::default();
    s.init(0x92).reqa(Card::Answers(&[0x04, 0x00]));
    let cl = [0x04, 0xA2, 0x2B, 0x19, 0x04 ^ 0xA2 ^ 0x2B ^ 0x19];
    s.transceive(&[0x93, 0x20], 0, 0, Card::Answers(&cl));
    let mut tx = vec![0x93, 0x70];
    tx.extend_from_slice(&cl);
    let crc = crc_a(&tx);
    tx.extend_from_slice(&crc);
    let good = crc_a(&[0x08]);
    s.transceive(&tx, 0, 0, Card::Answers(&[0x08, good[0] ^ 0x01, good[1]]));
    let mut drv = s.driver();
    drv.init().unwrap();
    let err = drv.read_card().unwrap_err();
    assert_eq!(err, Fault::Crc { step: "SAK" });
    assert!(err.is_card_fault());
    finish(drv);
}

#[test]
fn a_wrong_bcc_is_refused_before_select() {
    let mut s = Script::default();
    s.init(0x92).reqa(Card::Answers(&[0x04, 0x00])).transceive(
        &[0x93, 0x20],
        0,
        0,
        Card::Answers(&[0x04, 0xA2, 0x2B, 0x19, 0x00]),
    );
    let mut drv = s.driver();
    drv.init().unwrap();
    let err = drv.read_card().unwrap_err();
    assert!(
        matches!(
            err,
            Fault::Bcc {
                level: 1,
                got: 0x00,
                ..
            }
        ),
        "{err}"
    );
    finish(drv);
}

#[test]
fn a_collision_is_resolved_bit_by_bit_and_selects_the_card_with_a_one() {
    // Two cards: A = 04:A2:2B:19 and B = 04:A2:2B:11. They first differ in bit 3 of byte 3 (0x19 vs 0x11):
    // zero-based bit 27 of UID-CL1, so CollReg reports position 28. Bits up to 26 come through intact (the
    // chip clears the rest). The driver then sends 28 known bits with bit 27 set to 1, and only card A
    // (0x19 has bit 3 set) answers with the remaining 4 bits of byte 3 and its BCC.
    let a = [0x04u8, 0xA2, 0x2B, 0x19];
    let bcc = a[0] ^ a[1] ^ a[2] ^ a[3];
    let mut s = Script::default();
    s.init(0x92)
        .reqa(Card::Answers(&[0x04, 0x00]))
        .transceive(
            &[0x93, 0x20],
            0,
            0,
            Card::CollidesWithParity(&[0x04, 0xA2, 0x2B, 0x01, 0x00], 28),
        )
        // NVB: 2 + 3 full bytes, 4 bits; the 4th byte carries bits 24..27 = 0b1001 (bit 27 chosen as 1).
        .transceive(
            &[0x93, 0x54, 0x04, 0xA2, 0x2B, 0x09],
            4,
            4,
            // The first answer byte holds card A's bits 4..7 of byte 3 (0x1_) at positions 4..7.
            Card::Answers(&[0x10, bcc]),
        )
        .select(0x93, [a[0], a[1], a[2], a[3], bcc], 0x08)
        .hlta();
    let mut drv = s.driver();
    drv.init().unwrap();
    let tap = drv.read_card().unwrap().expect("card A");
    assert_eq!(tap.uid.as_bytes(), &a);
    finish(drv);
}

#[test]
fn an_unresolvable_collision_is_reported() {
    let mut s = Script::default();
    s.init(0x92).reqa(Card::Answers(&[0x04, 0x00])).transceive(
        &[0x93, 0x20],
        0,
        0,
        Card::Collides(&[0x00], 0x20),
    );
    let mut drv = s.driver();
    drv.init().unwrap();
    let err = drv.read_card().unwrap_err();
    assert!(matches!(err, Fault::Collision { .. }), "{err}");
    assert!(err.is_card_fault());
    finish(drv);
}

#[test]
fn a_card_that_leaves_mid_read_is_card_lost_not_a_reader_fault() {
    // REQA and the first anticollision succeed, then the card is gone before SELECT.
    let mut s = Script::default();
    let cl = [0x88, 0x04, 0x11, 0x22, 0x88 ^ 0x04 ^ 0x11 ^ 0x22];
    s.init(0x92).reqa(Card::Answers(&[0x44, 0x00])).transceive(
        &[0x93, 0x20],
        0,
        0,
        Card::Answers(&cl),
    );
    let mut tx = vec![0x93, 0x70];
    tx.extend_from_slice(&cl);
    let crc = crc_a(&tx);
    tx.extend_from_slice(&crc);
    s.transceive(&tx, 0, 0, Card::Silent);
    let mut drv = s.driver();
    drv.init().unwrap();
    let err = drv.read_card().unwrap_err();
    assert_eq!(err, Fault::CardLost { step: "select" });
    assert!(err.is_card_fault());
    finish(drv);
}

#[test]
fn a_card_that_leaves_between_cascade_levels_is_card_lost() {
    let mut s = Script::default();
    s.init(0x92)
        .reqa(Card::Answers(&[0x44, 0x00]))
        .level(0x93, [0x88, 0x04, 0x11, 0x22], 0x04)
        .transceive(&[0x95, 0x20], 0, 0, Card::Silent);
    let mut drv = s.driver();
    drv.init().unwrap();
    assert_eq!(
        drv.read_card().unwrap_err(),
        Fault::CardLost {
            step: "anticollision"
        }
    );
    finish(drv);
}

#[test]
fn a_parity_error_is_a_card_protocol_fault() {
    let mut s = Script::default();
    s.init(0x92).reqa(Card::Answers(&[0x04, 0x00])).transceive(
        &[0x93, 0x20],
        0,
        0,
        Card::Errors(0x02),
    );
    let mut drv = s.driver();
    drv.init().unwrap();
    let err = drv.read_card().unwrap_err();
    assert!(
        matches!(
            err,
            Fault::Protocol {
                step: "anticollision",
                ..
            }
        ),
        "{err}"
    );
    finish(drv);
}

#[test]
fn a_short_atqa_is_refused() {
    let mut s = Script::default();
    s.init(0x92).reqa(Card::AnswersBits(&[0x04], 3));
    let mut drv = s.driver();
    drv.init().unwrap();
    assert!(matches!(
        drv.read_card().unwrap_err(),
        Fault::Protocol { step: "REQA", .. }
    ));
    finish(drv);
}

#[test]
fn a_reader_that_does_not_answer_names_the_register_and_what_to_check() {
    // MISO stuck low: every register reads 0x00.
    let mut s = Script::default();
    s.read(Reg::Version, 0x00);
    let mut drv = s.driver();
    let err = drv.init().unwrap_err();
    assert_eq!(
        err,
        Fault::NotAnswering {
            register: "VersionReg",
            value: 0x00
        }
    );
    assert!(!err.is_card_fault());
    let text = err.to_string();
    assert!(
        text.contains("SPI is enabled") && text.contains("reset pin"),
        "{text}"
    );
    finish(drv);
}

#[test]
fn a_reader_that_stops_mid_transceive_is_stalled_not_hung() {
    let mut s = Script::default();
    s.init(0x92)
        .write(Reg::Command, 0x00)
        .write(Reg::ComIrq, 0x7F)
        .write(Reg::FifoLevel, 0x80)
        .write_fifo(&[0x26])
        .write(Reg::BitFraming, 0x07)
        .write(Reg::Command, 0x0C)
        .write(Reg::BitFraming, 0x87);
    for _ in 0..MAX_IRQ_POLLS {
        s.read(Reg::ComIrq, 0x00);
    }
    let mut drv = s.driver();
    drv.init().unwrap();
    let err = drv.read_card().unwrap_err();
    assert_eq!(
        err,
        Fault::Stalled {
            doing: "REQA",
            register: "ComIrqReg"
        }
    );
    assert!(!err.is_card_fault());
    finish(drv);
}

#[test]
fn check_notices_a_vanished_or_reset_chip() {
    let mut s = Script::default();
    s.init(0x92)
        .read(Reg::Version, 0x92)
        .read(Reg::TMode, 0x80)
        .read(Reg::Version, 0x92)
        .read(Reg::TMode, 0x00)
        .read(Reg::Version, 0xFF);
    let mut drv = s.driver();
    drv.init().unwrap();
    drv.check().unwrap();
    assert!(matches!(
        drv.check().unwrap_err(),
        Fault::LostConfiguration {
            register: "TModeReg",
            ..
        }
    ));
    assert!(matches!(
        drv.check().unwrap_err(),
        Fault::NotAnswering { value: 0xFF, .. }
    ));
    finish(drv);
}

#[test]
fn the_reset_line_is_pulsed_before_init() {
    use embedded_hal_mock::eh1::digital::{Mock as Pin, State, Transaction as P};
    let mut s = Script::default();
    s.init(0x92);
    let mut pin = Pin::new(&[P::set(State::Low), P::set(State::High)]);
    let mut drv = Mfrc522::with_reset_pin(Mock::new(&s.0), NoopDelay::new(), pin.clone());
    drv.init().unwrap();
    let (mut spi, _, _) = drv.release();
    spi.done();
    pin.done();
}

#[test]
fn self_test_compares_with_the_datasheet_reference() {
    let mut s = Script::default();
    s.read(Reg::Version, 0x92)
        .write(Reg::Command, 0x0F)
        .read(Reg::Command, 0x00)
        .write(Reg::FifoLevel, 0x80)
        .write_fifo(&[0u8; 25])
        .write(Reg::Command, 0x01)
        .write(Reg::AutoTest, 0x09)
        .write_fifo(&[0x00])
        .write(Reg::Command, 0x03)
        .read(Reg::FifoLevel, 12)
        .read(Reg::FifoLevel, 64)
        .write(Reg::Command, 0x00)
        .read_fifo(&SELF_TEST_V2)
        .write(Reg::AutoTest, 0x00)
        .init(0x92);
    let mut drv = s.driver();
    assert_eq!(drv.self_test().unwrap(), SelfTest::Passed);
    finish(drv);
}
