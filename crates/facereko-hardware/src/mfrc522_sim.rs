//! A software MFRC522 behind an embedded-hal [`SpiDevice`], with ISO 14443-A cards that follow the card
//! state machine (IDLE → READY → ACTIVE → HALT), answer REQA/WUPA, anticollision (with real bit collisions
//! between several cards), SELECT and HLTA.
//!
//! It lets commands such as `card read` and `doctor` be tested end to end through the real driver and
//! poller without scripting every register access: place cards, take them away, make the chip stop
//! answering or lose its configuration. It emulates what the driver uses, not the whole chip (no
//! MIFARE authentication, no self-test).

use std::sync::{Arc, Mutex, MutexGuard};

use embedded_hal::spi::{ErrorKind, ErrorType, Operation, SpiDevice};
use facereko_domain::CardUid;

use crate::mfrc522::{crc_a, Reg, CASCADE_TAG, PICC_HLTA, PICC_REQA, PICC_WUPA};

/// A card for the simulated reader.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimCard {
    pub uid: CardUid,
    pub atqa: u16,
    /// The final SAK (after the last cascade level).
    pub sak: u8,
}

impl SimCard {
    /// A MIFARE Classic 1K (ATQA 0x0004, SAK 0x08) with a 4-byte UID, or an Ultralight (0x0044/0x00)
    /// with a 7-byte one, or a DESFire-like card (0x0344/0x20) with a 10-byte one.
    pub fn typical(uid: CardUid) -> Self {
        let (atqa, sak) = match uid.as_bytes().len() {
            4 => (0x0004, 0x08),
            7 => (0x0044, 0x00),
            _ => (0x0344, 0x20),
        };
        Self { uid, atqa, sak }
    }

    /// UID-CLn plus BCC for cascade level `level` (1-based).
    fn cl(&self, level: usize) -> Option<[u8; 5]> {
        let u = self.uid.as_bytes();
        let levels = match u.len() {
            4 => 1,
            7 => 2,
            _ => 3,
        };
        if level == 0 || level > levels {
            return None;
        }
        let four: [u8; 4] = if level < levels {
            let s = 3 * (level - 1);
            [CASCADE_TAG, u[s], u[s + 1], u[s + 2]]
        } else {
            let s = 3 * (level - 1);
            [u[s], u[s + 1], u[s + 2], u[s + 3]]
        };
        let bcc = four[0] ^ four[1] ^ four[2] ^ four[3];
        Some([four[0], four[1], four[2], four[3], bcc])
    }

    fn levels(&self) -> usize {
        match self.uid.as_bytes().len() {
            4 => 1,
            7 => 2,
            _ => 3,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CardState {
    Idle,
    /// Woken; in anticollision at this cascade level (1-based).
    Ready(usize),
    Active,
    Halt,
}

#[derive(Debug)]
struct Chip {
    regs: [u8; 64],
    fifo: Vec<u8>,
    version: u8,
    answering: bool,
    cards: Vec<(SimCard, CardState)>,
}

impl Chip {
    fn soft_reset(&mut self) {
        let version = self.version;
        self.regs = [0; 64];
        self.regs[Reg::TxControl as usize] = 0x80;
        self.regs[Reg::Coll as usize] = 0x80;
        self.regs[Reg::Mode as usize] = 0x3F;
        self.regs[Reg::Version as usize] = version;
        self.fifo.clear();
    }

    fn read(&mut self, reg: u8) -> u8 {
        if !self.answering {
            return 0x00;
        }
        match reg {
            r if r == Reg::FifoData as u8 => {
                if self.fifo.is_empty() {
                    0
                } else {
                    self.fifo.remove(0)
                }
            }
            r if r == Reg::FifoLevel as u8 => self.fifo.len().min(64) as u8,
            r if r == Reg::Version as u8 => self.version,
            r => self.regs[usize::from(r & 0x3F)],
        }
    }

    fn write(&mut self, reg: u8, value: u8) {
        if !self.answering {
            return;
        }
        match reg {
            r if r == Reg::FifoData as u8 => self.fifo.push(value),
            r if r == Reg::FifoLevel as u8 => {
                if value & 0x80 != 0 {
                    self.fifo.clear();
                }
            }
            r if r == Reg::ComIrq as u8 => {
                // Bit 7 (Set1) chooses whether the marked bits are set or cleared.
                let marked = value & 0x7F;
                if value & 0x80 != 0 {
                    self.regs[r as usize] |= marked;
                } else {
                    self.regs[r as usize] &= !marked;
                }
            }
            r if r == Reg::Command as u8 => {
                if value & 0x0F == 0x0F {
                    self.soft_reset();
                } else {
                    self.regs[r as usize] = value & 0x3F;
                }
            }
            r if r == Reg::BitFraming as u8 => {
                self.regs[r as usize] = value & 0x7F;
                let transceive = self.regs[Reg::Command as usize] & 0x0F == 0x0C;
                if value & 0x80 != 0 && transceive {
                    self.transceive(value & 0x07, (value >> 4) & 0x07);
                }
            }
            r => self.regs[usize::from(r & 0x3F)] = value,
        }
    }

    /// Runs one PCD→PICC frame from the FIFO and leaves the answer where the driver expects it.
    fn transceive(&mut self, tx_last_bits: u8, rx_align: u8) {
        let tx = std::mem::take(&mut self.fifo);
        // Without the antenna on, or with the timer not auto-starting, nothing would ever come back.
        let antenna = self.regs[Reg::TxControl as usize] & 0x03 == 0x03;
        let answer = if antenna {
            self.picc(&tx, tx_last_bits)
        } else {
            None
        };
        self.regs[Reg::Error as usize] = 0;
        self.regs[Reg::Control as usize] = 0;
        match answer {
            None => {
                self.regs[Reg::ComIrq as usize] |= 0x01; // TimerIRq
            }
            Some((bits, collision_at)) => {
                let total = usize::from(rx_align) + bits.len();
                let mut bytes = vec![0u8; total.div_ceil(8)];
                for (i, &b) in bits.iter().enumerate() {
                    let p = usize::from(rx_align) + i;
                    if b {
                        bytes[p / 8] |= 1 << (p % 8);
                    }
                }
                self.fifo = bytes;
                self.regs[Reg::Control as usize] = (total % 8) as u8;
                self.regs[Reg::ComIrq as usize] |= 0x30; // RxIRq | IdleIRq
                if let Some(pos) = collision_at {
                    self.regs[Reg::Error as usize] |= 0x08;
                    self.regs[Reg::Coll as usize] = (pos % 32) as u8;
                }
            }
        }
    }

    /// What the cards send back as bits (LSB first), and the 1-based position of a collision in the
    /// UID-CLn frame when several cards answered differently.
    fn picc(&mut self, tx: &[u8], tx_last_bits: u8) -> Option<(Vec<bool>, Option<usize>)> {
        let bits_of = |bytes: &[u8]| -> Vec<bool> {
            bytes
                .iter()
                .flat_map(|b| (0..8).map(move |i| b & (1 << i) != 0))
                .collect()
        };
        if tx.len() == 1 && tx_last_bits == 7 && (tx[0] == PICC_REQA || tx[0] == PICC_WUPA) {
            let wupa = tx[0] == PICC_WUPA;
            let mut atqas = Vec::new();
            for (card, state) in self.cards.iter_mut() {
                let wakes = *state == CardState::Idle || (wupa && *state == CardState::Halt);
                if wakes {
                    *state = CardState::Ready(1);
                    atqas.push(card.atqa);
                }
            }
            let answers: Vec<Vec<bool>> = atqas.iter().map(|a| bits_of(&a.to_le_bytes())).collect();
            return merge(answers, 0);
        }
        if tx.len() == 4 && tx[0] == PICC_HLTA && tx[1] == 0 && crc_a(&tx[..2]) == [tx[2], tx[3]] {
            for (_, state) in self.cards.iter_mut() {
                if *state == CardState::Active {
                    *state = CardState::Halt;
                }
            }
            return None;
        }
        let level = match tx.first()? {
            0x93 => 1,
            0x95 => 2,
            0x97 => 3,
            _ => return None,
        };
        let nvb = *tx.get(1)?;
        if nvb == 0x70 {
            // SELECT: 9 bytes with CRC_A.
            if tx.len() != 9 || crc_a(&tx[..7]) != [tx[7], tx[8]] || tx_last_bits != 0 {
                return None;
            }
            let mut answer = None;
            for (card, state) in self.cards.iter_mut() {
                if *state != CardState::Ready(level) {
                    continue;
                }
                if card.cl(level).as_ref().map(|c| &c[..]) == Some(&tx[2..7]) {
                    let last = level == card.levels();
                    let sak = if last { card.sak } else { 0x04 };
                    *state = if last {
                        CardState::Active
                    } else {
                        CardState::Ready(level + 1)
                    };
                    let crc = crc_a(&[sak]);
                    answer = Some(bits_of(&[sak, crc[0], crc[1]]));
                } else {
                    *state = CardState::Idle;
                }
            }
            return answer.map(|a| (a, None));
        }
        // Anticollision: the cards whose UID-CLn starts with the known bits send the rest.
        let known = usize::from(nvb >> 4).checked_sub(2)? * 8 + usize::from(nvb & 0x0F);
        let sent = bits_of(&tx[2..]);
        if sent.len() < known || known > 32 {
            return None;
        }
        let prefix = &sent[..known];
        let answers: Vec<Vec<bool>> = self
            .cards
            .iter()
            .filter(|(_, s)| *s == CardState::Ready(level))
            .filter_map(|(c, _)| c.cl(level))
            .map(|cl| bits_of(&cl))
            .filter(|bits| &bits[..known] == prefix)
            .map(|bits| bits[known..].to_vec())
            .collect();
        merge(answers, known)
    }
}

/// What the reader receives when several cards answer at once: the common bits up to the first one on
/// which they differ, then zeros (ValuesAfterColl = 0), and the collision position counted from the start
/// of the frame field (`offset` bits were already known).
fn merge(answers: Vec<Vec<bool>>, offset: usize) -> Option<(Vec<bool>, Option<usize>)> {
    let first = answers.first()?.clone();
    let differ = (0..first.len()).find(|&i| answers.iter().any(|a| a[i] != first[i]));
    match differ {
        None => Some((first, None)),
        Some(i) => {
            let mut bits = first;
            for b in bits.iter_mut().skip(i) {
                *b = false;
            }
            Some((bits, Some(offset + i + 1)))
        }
    }
}

/// The simulated chip. Clones share it: keep one to place cards while the driver owns another.
#[derive(Clone, Debug)]
pub struct SimulatedMfrc522 {
    chip: Arc<Mutex<Chip>>,
}

impl Default for SimulatedMfrc522 {
    fn default() -> Self {
        Self::new(0x92)
    }
}

impl SimulatedMfrc522 {
    /// A chip reporting `version` in VersionReg (0x92 for an MFRC522 v2.0).
    pub fn new(version: u8) -> Self {
        let mut chip = Chip {
            regs: [0; 64],
            fifo: Vec::new(),
            version,
            answering: true,
            cards: Vec::new(),
        };
        chip.soft_reset();
        Self {
            chip: Arc::new(Mutex::new(chip)),
        }
    }

    fn chip(&self) -> MutexGuard<'_, Chip> {
        self.chip.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Puts a card in the field (it starts IDLE).
    pub fn place(&self, card: SimCard) {
        self.chip().cards.push((card, CardState::Idle));
    }

    /// Takes every card away.
    pub fn clear(&self) {
        self.chip().cards.clear();
    }

    /// Makes the chip stop answering (every register reads 0x00, as with a loose MISO wire) or answer again.
    pub fn set_answering(&self, answering: bool) {
        self.chip().answering = answering;
    }

    /// A power dip: the chip resets and forgets its configuration (antenna off, timer not set).
    pub fn brown_out(&self) {
        self.chip().soft_reset();
    }
}

impl ErrorType for SimulatedMfrc522 {
    type Error = ErrorKind;
}

impl SpiDevice for SimulatedMfrc522 {
    fn transaction(&mut self, operations: &mut [Operation<'_, u8>]) -> Result<(), ErrorKind> {
        let mut chip = self.chip();
        // One transaction is one chip-select period: the first byte is an address; for a write, every
        // following byte goes to that register; for a read, each byte clocked out answers the address
        // sent in the previous byte.
        let mut bytes_in: Vec<u8> = Vec::new();
        for op in operations.iter() {
            match op {
                Operation::Write(w) => bytes_in.extend_from_slice(w),
                Operation::TransferInPlace(b) => bytes_in.extend_from_slice(b),
                Operation::Transfer(_, w) => bytes_in.extend_from_slice(w),
                Operation::Read(r) => bytes_in.extend(std::iter::repeat_n(0u8, r.len())),
                Operation::DelayNs(_) => {}
            }
        }
        let Some(&first) = bytes_in.first() else {
            return Ok(());
        };
        let mut out = vec![0u8; bytes_in.len()];
        if first & 0x80 == 0 {
            let reg = (first >> 1) & 0x3F;
            for &v in &bytes_in[1..] {
                chip.write(reg, v);
            }
        } else {
            for i in 1..bytes_in.len() {
                out[i] = chip.read((bytes_in[i - 1] >> 1) & 0x3F);
            }
        }
        let mut at = 0;
        for op in operations.iter_mut() {
            match op {
                Operation::Write(w) => at += w.len(),
                Operation::TransferInPlace(b) => {
                    b.copy_from_slice(&out[at..at + b.len()]);
                    at += b.len();
                }
                Operation::Transfer(r, w) => {
                    let n = r.len().min(w.len());
                    r[..n].copy_from_slice(&out[at..at + n]);
                    at += w.len();
                }
                Operation::Read(r) => {
                    r.copy_from_slice(&out[at..at + r.len()]);
                    at += r.len();
                }
                Operation::DelayNs(_) => {}
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::mfrc522::{Fault, Mfrc522, NoResetPin, ThreadSleep};
    use crate::reader::{PollOptions, PolledReader, ReaderStatus};
    use crate::CardReader;

    struct NoDelay;
    impl embedded_hal::delay::DelayNs for NoDelay {
        fn delay_ns(&mut self, _ns: u32) {}
    }

    fn driver(sim: &SimulatedMfrc522) -> Mfrc522<SimulatedMfrc522, NoDelay, NoResetPin> {
        Mfrc522::new(sim.clone(), NoDelay)
    }

    fn card(uid: &str) -> SimCard {
        SimCard::typical(uid.parse().unwrap())
    }

    #[test]
    fn the_driver_reads_4_7_and_10_byte_uids_with_atqa_and_sak() {
        for (uid, atqa, sak) in [
            ("04:A2:2B:19", 0x0004, 0x08),
            ("04:11:22:33:44:55:66", 0x0044, 0x00),
            ("01:02:03:04:05:06:07:08:09:0A", 0x0344, 0x20),
        ] {
            let sim = SimulatedMfrc522::default();
            let mut drv = driver(&sim);
            assert_eq!(drv.init().unwrap().version, 0x92);
            assert_eq!(drv.read_card().unwrap(), None);
            sim.place(card(uid));
            let tap = drv.read_card().unwrap().expect("a card");
            assert_eq!(tap.uid.to_string(), uid);
            assert_eq!((tap.atqa, tap.sak), (Some(atqa), Some(sak)));
            // Halted: a resting card is not reported again by REQA, but WUPA wakes it.
            assert_eq!(drv.read_card().unwrap(), None);
            assert_eq!(drv.wupa().unwrap(), Some(atqa));
        }
    }

    #[test]
    fn two_cards_are_read_one_after_the_other() {
        let sim = SimulatedMfrc522::default();
        let mut drv = driver(&sim);
        drv.init().unwrap();
        // Same ATQA, UIDs differing deep in the first cascade level and across lengths.
        sim.place(card("04:A2:2B:19"));
        sim.place(card("04:A2:2B:11"));
        let first = drv.read_card().unwrap().expect("one card").uid;
        let second = drv.read_card().unwrap().expect("the other card").uid;
        assert_eq!(
            first.to_string(),
            "04:A2:2B:19",
            "the collision bit is chosen as 1"
        );
        assert_eq!(second.to_string(), "04:A2:2B:11");
        assert_eq!(drv.read_card().unwrap(), None, "both halted");
    }

    #[test]
    fn cards_of_different_sizes_collide_and_are_both_read() {
        let sim = SimulatedMfrc522::default();
        let mut drv = driver(&sim);
        drv.init().unwrap();
        // An Ultralight (ATQA 0x0044) and a Classic (0x0004): the ATQAs collide too.
        sim.place(card("04:11:22:33:44:55:66"));
        sim.place(card("08:11:22:33"));
        let mut seen = vec![
            drv.read_card().unwrap().expect("a card").uid.to_string(),
            drv.read_card().unwrap().expect("a card").uid.to_string(),
        ];
        seen.sort();
        assert_eq!(seen, vec!["04:11:22:33:44:55:66", "08:11:22:33"]);
    }

    #[test]
    fn a_silent_chip_and_a_brown_out_are_noticed() {
        let sim = SimulatedMfrc522::default();
        let mut drv = driver(&sim);
        drv.init().unwrap();
        sim.brown_out();
        assert!(matches!(
            drv.check().unwrap_err(),
            Fault::LostConfiguration { .. }
        ));
        drv.init().unwrap();
        sim.set_answering(false);
        assert_eq!(
            drv.init().unwrap_err(),
            Fault::NotAnswering {
                register: "VersionReg",
                value: 0
            }
        );
    }

    #[tokio::test]
    async fn the_poller_recovers_a_reader_that_stopped_answering() {
        let sim = SimulatedMfrc522::default();
        let opts = PollOptions {
            interval: Duration::from_millis(2),
            check_every: Duration::from_millis(5),
            retry_delay: Duration::from_millis(2),
            max_retry_delay: Duration::from_millis(10),
        };
        let mut reader = PolledReader::spawn(Mfrc522::new(sim.clone(), ThreadSleep), opts).unwrap();
        sim.place(card("04:A2:2B:19"));
        let tap = tokio::time::timeout(Duration::from_secs(5), reader.next_card())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(tap.uid.to_string(), "04:A2:2B:19");

        sim.set_answering(false);
        let mut saw_fault = false;
        for _ in 0..500 {
            // The first fault may be the stalled transceive; the re-initialisation then names VersionReg.
            if let ReaderStatus::Fault { reason, .. } = reader.status() {
                if reason.contains("VersionReg read 0x00") {
                    saw_fault = true;
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        assert!(saw_fault, "status: {}", reader.status());

        sim.set_answering(true);
        sim.clear();
        sim.place(card("04:11:22:33:44:55:66"));
        let tap = tokio::time::timeout(Duration::from_secs(5), reader.next_card())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(tap.uid.to_string(), "04:11:22:33:44:55:66");
        assert!(reader.status().is_ok());
    }
}
