//! An MFRC522 (RC522) driver over any embedded-hal 1.0 [`SpiDevice`]: initialisation and self-test,
//! REQA/WUPA, ISO 14443-3 anticollision and select for 4-, 7- and 10-byte UIDs, HLTA.
//!
//! Why our own driver and not the `mfrc522` crate (0.8): that crate keeps the ATQA and SAK bytes private
//! (commissioning needs them to name the card type), loops without bound while waiting for the chip (a reader
//! that stops answering hangs the thread), never verifies the BCC it receives and panics on a card that
//! claims a fourth cascade level. Here every wait is bounded, every frame is checked (BCC, CRC_A of the
//! SAK) and every failure says which step and which register.
//!
//! CRC_A is computed in software ([`crc_a`]) rather than by the chip's coprocessor: one SPI exchange less per
//! frame and a pure function the tests can check against the ISO 14443-3 vectors.

use embedded_hal::delay::DelayNs;
use embedded_hal::digital::OutputPin;
use embedded_hal::spi::SpiDevice;
use facereko_domain::CardUid;

use crate::CardTap;

/// MFRC522 registers (datasheet section 9).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Reg {
    Command = 0x01,
    ComIrq = 0x04,
    DivIrq = 0x05,
    Error = 0x06,
    FifoData = 0x09,
    FifoLevel = 0x0A,
    Control = 0x0C,
    BitFraming = 0x0D,
    Coll = 0x0E,
    Mode = 0x11,
    TxMode = 0x12,
    RxMode = 0x13,
    TxControl = 0x14,
    TxAsk = 0x15,
    ModWidth = 0x24,
    TMode = 0x2A,
    TPrescaler = 0x2B,
    TReloadHigh = 0x2C,
    TReloadLow = 0x2D,
    AutoTest = 0x36,
    Version = 0x37,
}

impl Reg {
    pub fn name(self) -> &'static str {
        match self {
            Reg::Command => "CommandReg",
            Reg::ComIrq => "ComIrqReg",
            Reg::DivIrq => "DivIrqReg",
            Reg::Error => "ErrorReg",
            Reg::FifoData => "FIFODataReg",
            Reg::FifoLevel => "FIFOLevelReg",
            Reg::Control => "ControlReg",
            Reg::BitFraming => "BitFramingReg",
            Reg::Coll => "CollReg",
            Reg::Mode => "ModeReg",
            Reg::TxMode => "TxModeReg",
            Reg::RxMode => "RxModeReg",
            Reg::TxControl => "TxControlReg",
            Reg::TxAsk => "TxASKReg",
            Reg::ModWidth => "ModWidthReg",
            Reg::TMode => "TModeReg",
            Reg::TPrescaler => "TPrescalerReg",
            Reg::TReloadHigh => "TReloadRegH",
            Reg::TReloadLow => "TReloadRegL",
            Reg::AutoTest => "AutoTestReg",
            Reg::Version => "VersionReg",
        }
    }

    /// The SPI address byte for a read (datasheet 8.1.2.3: MSB set, address in bits 6..1).
    pub const fn read_addr(self) -> u8 {
        0x80 | ((self as u8) << 1)
    }

    /// The SPI address byte for a write.
    pub const fn write_addr(self) -> u8 {
        (self as u8) << 1
    }
}

// Commands (CommandReg).
const CMD_IDLE: u8 = 0x00;
const CMD_MEM: u8 = 0x01;
const CMD_CALC_CRC: u8 = 0x03;
const CMD_TRANSCEIVE: u8 = 0x0C;
const CMD_SOFT_RESET: u8 = 0x0F;
const POWER_DOWN: u8 = 0x10;

// ComIrqReg bits.
const IRQ_TIMER: u8 = 0x01;
const IRQ_IDLE: u8 = 0x10;
const IRQ_RX: u8 = 0x20;
const IRQ_ALL: u8 = 0x7F;

// ErrorReg bits.
const ERR_PROTOCOL: u8 = 0x01;
const ERR_PARITY: u8 = 0x02;
const ERR_COLL: u8 = 0x08;
const ERR_BUFFER_OVFL: u8 = 0x10;
const ERR_TEMP: u8 = 0x40;
const ERR_WR: u8 = 0x80;

// CollReg bits.
const COLL_POS_NOT_VALID: u8 = 0x20;

// TModeReg after our init: the timer starts at the end of each transmission (TAuto).
const TMODE_AUTO: u8 = 0x80;

// PICC commands (ISO 14443-3).
pub const PICC_REQA: u8 = 0x26;
pub const PICC_WUPA: u8 = 0x52;
pub const PICC_HLTA: u8 = 0x50;
const SEL_CL: [u8; 3] = [0x93, 0x95, 0x97];
/// The first byte of a UID-CLn that says "more UID bytes follow at the next cascade level".
pub const CASCADE_TAG: u8 = 0x88;
/// SAK bit 3 (0x04): UID not complete.
const SAK_UID_INCOMPLETE: u8 = 0x04;

/// How many times a wait on the chip polls its interrupt register before calling the reader stalled. The
/// chip's own timer fires after 25 ms, so 60 polls 1 ms apart are ample.
const MAX_IRQ_POLLS: u32 = 60;
/// Anticollision rounds per cascade level: each round learns at least one more UID bit (ISO 14443-3 allows 32).
const MAX_ANTICOLLISION_ROUNDS: usize = 33;

/// Self-test reference output, NXP MFRC522 datasheet rev. 3.8, section 16.1.1.
const SELF_TEST_V1: [u8; 64] = [
    0x00, 0xC6, 0x37, 0xD5, 0x32, 0xB7, 0x57, 0x5C, 0xC2, 0xD8, 0x7C, 0x4D, 0xD9, 0x70, 0xC7, 0x73,
    0x10, 0xE6, 0xD2, 0xAA, 0x5E, 0xA1, 0x3E, 0x5A, 0x14, 0xAF, 0x30, 0x61, 0xC9, 0x70, 0xDB, 0x2E,
    0x64, 0x22, 0x72, 0xB5, 0xBD, 0x65, 0xF4, 0xEC, 0x22, 0xBC, 0xD3, 0x72, 0x35, 0xCD, 0xAA, 0x41,
    0x1F, 0xA7, 0xF3, 0x53, 0x14, 0xDE, 0x7E, 0x02, 0xD9, 0x0F, 0xB5, 0x5E, 0x25, 0x1D, 0x29, 0x79,
];
const SELF_TEST_V2: [u8; 64] = [
    0x00, 0xEB, 0x66, 0xBA, 0x57, 0xBF, 0x23, 0x95, 0xD0, 0xE3, 0x0D, 0x3D, 0x27, 0x89, 0x5C, 0xDE,
    0x9D, 0x3B, 0xA7, 0x00, 0x21, 0x5B, 0x89, 0x82, 0x51, 0x3A, 0xEB, 0x02, 0x0C, 0xA5, 0x00, 0x49,
    0x7C, 0x84, 0x4D, 0xB3, 0xCC, 0xD2, 0x1B, 0x81, 0x5D, 0x48, 0x76, 0xD5, 0x71, 0x61, 0x21, 0xA9,
    0x86, 0x96, 0x83, 0x38, 0xCF, 0x9D, 0x5B, 0x6D, 0xDC, 0x15, 0xBA, 0x3E, 0x7D, 0x95, 0x3B, 0x2F,
];

/// What went wrong talking to the reader or to a card. [`Fault::is_card_fault`] separates a card that
/// misbehaved or left (try again on the next poll) from a reader that needs re-initialising.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Fault {
    #[error("SPI transfer failed while {doing} {register}: {detail}")]
    Spi {
        doing: &'static str,
        register: &'static str,
        detail: String,
    },
    #[error(
        "the reader does not answer: {register} read {value:#04x} (an MFRC522 reports 0x91 or 0x92); check \
         that SPI is enabled (/dev/spidev0.0 exists), the wiring (SDA to CE0, SCK, MOSI, MISO, 3.3 V, GND) \
         and the reset pin"
    )]
    NotAnswering { register: &'static str, value: u8 },
    #[error("the reader lost its configuration ({register} reads {value:#04x}): power dip or reset line glitch")]
    LostConfiguration { register: &'static str, value: u8 },
    #[error("the reader stopped responding while {doing} ({register} never changed)")]
    Stalled {
        doing: &'static str,
        register: &'static str,
    },
    #[error(
        "the reader reports an internal error while {step}: {detail} (ErrorReg {error_reg:#04x})"
    )]
    Chip {
        step: &'static str,
        error_reg: u8,
        detail: &'static str,
    },
    #[error("self-test failed for chip version {version:#04x}: output byte {index} is {got:#04x}, expected {expected:#04x}")]
    SelfTest {
        version: u8,
        index: usize,
        got: u8,
        expected: u8,
    },
    #[error("the card left during {step}")]
    CardLost { step: &'static str },
    #[error("CRC_A error in the card's {step}")]
    Crc { step: &'static str },
    #[error("wrong UID check byte (BCC) at cascade level {level}: got {got:#04x}, expected {expected:#04x}")]
    Bcc { level: u8, got: u8, expected: u8 },
    #[error("more than one card on the reader and the collision could not be resolved ({detail})")]
    Collision { detail: String },
    #[error("card protocol error during {step}: {detail}")]
    Protocol { step: &'static str, detail: String },
}

impl Fault {
    /// True when the card (not the reader) is to blame: the next poll may well succeed.
    pub fn is_card_fault(&self) -> bool {
        matches!(
            self,
            Fault::CardLost { .. }
                | Fault::Crc { .. }
                | Fault::Bcc { .. }
                | Fault::Collision { .. }
                | Fault::Protocol { .. }
        )
    }
}

impl From<Fault> for crate::Error {
    fn from(f: Fault) -> Self {
        crate::Error::Reader(f.to_string())
    }
}

pub type Result<T, E = Fault> = std::result::Result<T, E>;

/// ISO 14443-3 CRC_A (Annex B): initial value 0x6363, reflected polynomial 0x8408, sent low byte first.
pub fn crc_a(data: &[u8]) -> [u8; 2] {
    let mut crc: u16 = 0x6363;
    for &b in data {
        let mut ch = b ^ (crc & 0xFF) as u8;
        ch ^= ch << 4;
        let ch = u16::from(ch);
        crc = (crc >> 8) ^ (ch << 8) ^ (ch << 3) ^ (ch >> 4);
    }
    crc.to_le_bytes()
}

/// The chip in [`VersionReg`](Reg::Version), for logs and `doctor`.
pub fn chip_name(version: u8) -> &'static str {
    match version {
        0x91 => "MFRC522 v1.0",
        0x92 => "MFRC522 v2.0",
        0x90 => "MFRC522 v0.0",
        0x88 => "FM17522 (clone)",
        0x89 => "FM17522E (clone)",
        0xB2 => "FM17522 (clone, 0xB2)",
        0x12 => "MFRC522 (counterfeit, 0x12)",
        _ => "unknown MFRC522-compatible chip",
    }
}

/// What [`Mfrc522::init`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChipInfo {
    pub version: u8,
}

impl ChipInfo {
    pub fn name(&self) -> &'static str {
        chip_name(self.version)
    }
}

impl std::fmt::Display for ChipInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (VersionReg {:#04x})", self.name(), self.version)
    }
}

/// The outcome of [`Mfrc522::self_test`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SelfTest {
    Passed,
    /// The datasheet gives no reference output for this chip version (clones), so nothing was compared.
    NoReference {
        version: u8,
    },
}

/// A card selected by [`Mfrc522::select`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Selected {
    pub uid: CardUid,
    pub atqa: u16,
    pub sak: u8,
}

/// A reset line that is not wired: the driver falls back to a soft reset.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoResetPin;

impl embedded_hal::digital::ErrorType for NoResetPin {
    type Error = std::convert::Infallible;
}

impl OutputPin for NoResetPin {
    fn set_low(&mut self) -> std::result::Result<(), Self::Error> {
        Ok(())
    }
    fn set_high(&mut self) -> std::result::Result<(), Self::Error> {
        Ok(())
    }
}

/// A [`DelayNs`] that sleeps the calling thread (the driver runs on a thread of its own).
#[derive(Clone, Copy, Debug, Default)]
pub struct ThreadSleep;

impl DelayNs for ThreadSleep {
    fn delay_ns(&mut self, ns: u32) {
        std::thread::sleep(std::time::Duration::from_nanos(u64::from(ns)));
    }
}

/// One frame received from a card.
#[derive(Debug)]
enum Answer {
    /// The chip's timer ran out: no card answered.
    Silence,
    Frame {
        data: Vec<u8>,
        /// Valid bits in the last byte, 0 meaning all 8.
        last_bits: u8,
        /// CollReg when ErrorReg flagged a collision.
        collision: Option<u8>,
    },
}

/// The MFRC522 driver. Blocking: run it on a thread of its own (see [`crate::reader`]).
pub struct Mfrc522<SPI, D, RST = NoResetPin> {
    spi: SPI,
    delay: D,
    reset: Option<RST>,
    version: Option<u8>,
}

impl<SPI, D, RST> std::fmt::Debug for Mfrc522<SPI, D, RST> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mfrc522")
            .field("version", &self.version)
            .field("reset_pin", &self.reset.is_some())
            .finish()
    }
}

impl<SPI: SpiDevice, D: DelayNs> Mfrc522<SPI, D, NoResetPin> {
    /// A driver without a reset line (soft reset only).
    pub fn new(spi: SPI, delay: D) -> Self {
        Self {
            spi,
            delay,
            reset: None,
            version: None,
        }
    }
}

impl<SPI: SpiDevice, D: DelayNs, RST: OutputPin> Mfrc522<SPI, D, RST> {
    /// A driver that pulses the chip's NRSTPD line on [`init`](Self::init), which recovers a chip that no
    /// longer answers SPI at all.
    pub fn with_reset_pin(spi: SPI, delay: D, reset: RST) -> Self {
        Self {
            spi,
            delay,
            reset: Some(reset),
            version: None,
        }
    }

    /// A driver with or without a reset line, decided at run time (from config).
    pub fn with_optional_reset(spi: SPI, delay: D, reset: Option<RST>) -> Self {
        Self {
            spi,
            delay,
            reset,
            version: None,
        }
    }

    /// Gives the bus back.
    pub fn release(self) -> (SPI, D, Option<RST>) {
        (self.spi, self.delay, self.reset)
    }

    /// The version register seen by the last successful [`init`](Self::init).
    pub fn chip(&self) -> Option<ChipInfo> {
        self.version.map(|version| ChipInfo { version })
    }

    // ---- register access -------------------------------------------------------------------------

    fn spi_fault(doing: &'static str, reg: Reg, e: SPI::Error) -> Fault {
        use embedded_hal::spi::Error as _;
        Fault::Spi {
            doing,
            register: reg.name(),
            detail: format!("{:?}", e.kind()),
        }
    }

    /// Reads one register.
    pub fn read(&mut self, reg: Reg) -> Result<u8> {
        let mut buf = [reg.read_addr(), 0];
        self.spi
            .transfer_in_place(&mut buf)
            .map_err(|e| Self::spi_fault("reading", reg, e))?;
        Ok(buf[1])
    }

    /// Writes one register.
    pub fn write(&mut self, reg: Reg, value: u8) -> Result<()> {
        self.spi
            .write(&[reg.write_addr(), value])
            .map_err(|e| Self::spi_fault("writing", reg, e))
    }

    fn write_fifo(&mut self, data: &[u8]) -> Result<()> {
        let mut buf = Vec::with_capacity(data.len() + 1);
        buf.push(Reg::FifoData.write_addr());
        buf.extend_from_slice(data);
        self.spi
            .write(&buf)
            .map_err(|e| Self::spi_fault("writing", Reg::FifoData, e))
    }

    /// Reads `n` bytes from the FIFO in one SPI transaction: each address byte clocks out the value read
    /// by the previous one (datasheet 8.1.2.1).
    fn read_fifo(&mut self, n: usize) -> Result<Vec<u8>> {
        if n == 0 {
            return Ok(Vec::new());
        }
        let mut buf = vec![Reg::FifoData.read_addr(); n + 1];
        buf[n] = 0;
        self.spi
            .transfer_in_place(&mut buf)
            .map_err(|e| Self::spi_fault("reading", Reg::FifoData, e))?;
        buf.remove(0);
        Ok(buf)
    }

    fn delay_ms(&mut self, ms: u32) {
        self.delay.delay_ms(ms);
    }

    // ---- chip set-up -----------------------------------------------------------------------------

    /// Reads VersionReg and refuses the values a dead or unwired bus gives (0x00, 0xFF).
    pub fn version(&mut self) -> Result<u8> {
        let value = self.read(Reg::Version)?;
        if value == 0x00 || value == 0xFF {
            return Err(Fault::NotAnswering {
                register: Reg::Version.name(),
                value,
            });
        }
        Ok(value)
    }

    fn hard_reset(&mut self) {
        if let Some(pin) = self.reset.as_mut() {
            // Failing to drive the reset line is not fatal: the soft reset that follows still runs, and if
            // the chip is really gone the version check says so.
            let low = pin.set_low().is_ok();
            self.delay.delay_ms(1);
            let high = pin.set_high().is_ok();
            if !(low && high) {
                tracing::warn!(target: "facereko::mfrc522", "could not drive the reader's reset line");
            }
            // Oscillator start-up (datasheet 8.8.2) with a wide margin.
            self.delay.delay_ms(50);
        }
    }

    fn soft_reset(&mut self) -> Result<()> {
        self.write(Reg::Command, CMD_SOFT_RESET)?;
        self.delay_ms(50);
        for _ in 0..3 {
            if self.read(Reg::Command)? & POWER_DOWN == 0 {
                return Ok(());
            }
            self.delay_ms(10);
        }
        Err(Fault::Stalled {
            doing: "waking from soft reset",
            register: Reg::Command.name(),
        })
    }

    /// Resets the chip (reset line if wired, then soft reset), checks it answers, sets the 25 ms frame
    /// timeout and 100 % ASK, and switches the antenna on.
    pub fn init(&mut self) -> Result<ChipInfo> {
        self.version = None;
        self.hard_reset();
        let version = self.version()?;
        self.soft_reset()?;
        self.write(Reg::TxMode, 0x00)?;
        self.write(Reg::RxMode, 0x00)?;
        self.write(Reg::ModWidth, 0x26)?;
        // Timer: f = 13.56 MHz / (2 * 0xA9 + 1) = 40 kHz; reload 1000 -> 25 ms per frame.
        self.write(Reg::TMode, TMODE_AUTO)?;
        self.write(Reg::TPrescaler, 0xA9)?;
        self.write(Reg::TReloadHigh, 0x03)?;
        self.write(Reg::TReloadLow, 0xE8)?;
        self.write(Reg::TxAsk, 0x40)?;
        // CRC preset 0x6363 (ISO 14443-3), used by the self-test only.
        self.write(Reg::Mode, 0x3D)?;
        // ValuesAfterColl = 0: bits received after a collision read as 0, which the anticollision relies on.
        self.write(Reg::Coll, 0x00)?;
        let tx = self.read(Reg::TxControl)?;
        if tx & 0x03 != 0x03 {
            self.write(Reg::TxControl, tx | 0x03)?;
        }
        self.version = Some(version);
        Ok(ChipInfo { version })
    }

    /// Checks that the chip still answers with the version [`init`](Self::init) saw and still holds its
    /// configuration (a brown-out resets it silently). Cheap: two register reads.
    pub fn check(&mut self) -> Result<()> {
        let expected = self.version.ok_or(Fault::Stalled {
            doing: "checking a reader that was never initialised",
            register: Reg::Version.name(),
        })?;
        let value = self.read(Reg::Version)?;
        if value != expected {
            return Err(Fault::NotAnswering {
                register: Reg::Version.name(),
                value,
            });
        }
        let tmode = self.read(Reg::TMode)?;
        if tmode != TMODE_AUTO {
            return Err(Fault::LostConfiguration {
                register: Reg::TMode.name(),
                value: tmode,
            });
        }
        Ok(())
    }

    /// The datasheet's digital self-test (16.1.1). It leaves the chip reset: [`init`](Self::init) runs again
    /// at the end.
    pub fn self_test(&mut self) -> Result<SelfTest> {
        let version = self.version()?;
        let reference = match version {
            0x91 => Some(&SELF_TEST_V1),
            0x92 => Some(&SELF_TEST_V2),
            _ => None,
        };
        let Some(reference) = reference else {
            self.init()?;
            return Ok(SelfTest::NoReference { version });
        };
        self.soft_reset()?;
        // Clear the internal buffer: 25 zero bytes stored with the Mem command.
        self.write(Reg::FifoLevel, 0x80)?;
        self.write_fifo(&[0u8; 25])?;
        self.write(Reg::Command, CMD_MEM)?;
        self.write(Reg::AutoTest, 0x09)?;
        self.write_fifo(&[0x00])?;
        self.write(Reg::Command, CMD_CALC_CRC)?;
        let mut level = 0;
        for _ in 0..MAX_IRQ_POLLS {
            level = self.read(Reg::FifoLevel)?;
            if level >= 64 {
                break;
            }
            self.delay_ms(1);
        }
        if level < 64 {
            return Err(Fault::Stalled {
                doing: "running the self-test",
                register: Reg::FifoLevel.name(),
            });
        }
        self.write(Reg::Command, CMD_IDLE)?;
        let out = self.read_fifo(64)?;
        self.write(Reg::AutoTest, 0x00)?;
        let mismatch = out
            .iter()
            .zip(reference.iter())
            .enumerate()
            .find(|(_, (g, e))| g != e);
        self.init()?;
        match mismatch {
            None => Ok(SelfTest::Passed),
            Some((index, (&got, &expected))) => Err(Fault::SelfTest {
                version,
                index,
                got,
                expected,
            }),
        }
    }

    /// Switches the antenna off (saves power; cards are no longer read).
    pub fn antenna_off(&mut self) -> Result<()> {
        let tx = self.read(Reg::TxControl)?;
        self.write(Reg::TxControl, tx & !0x03)
    }

    // ---- talking to cards ------------------------------------------------------------------------

    /// Sends `tx` (the last byte holding `tx_last_bits` bits, 0 = all) and waits for the card's answer, whose
    /// first bit the chip stores at bit `rx_align` of the first FIFO byte.
    fn transceive(
        &mut self,
        tx: &[u8],
        tx_last_bits: u8,
        rx_align: u8,
        step: &'static str,
    ) -> Result<Answer> {
        self.write(Reg::Command, CMD_IDLE)?;
        self.write(Reg::ComIrq, IRQ_ALL)?;
        self.write(Reg::FifoLevel, 0x80)?;
        self.write_fifo(tx)?;
        let framing = ((rx_align & 0x07) << 4) | (tx_last_bits & 0x07);
        self.write(Reg::BitFraming, framing)?;
        self.write(Reg::Command, CMD_TRANSCEIVE)?;
        self.write(Reg::BitFraming, framing | 0x80)?; // StartSend
        let mut polls = 0;
        loop {
            let irq = self.read(Reg::ComIrq)?;
            if irq & (IRQ_RX | IRQ_IDLE) != 0 {
                break;
            }
            if irq & IRQ_TIMER != 0 {
                return Ok(Answer::Silence);
            }
            polls += 1;
            if polls >= MAX_IRQ_POLLS {
                return Err(Fault::Stalled {
                    doing: step,
                    register: Reg::ComIrq.name(),
                });
            }
            self.delay_ms(1);
        }
        let err = self.read(Reg::Error)?;
        if err & (ERR_WR | ERR_TEMP | ERR_BUFFER_OVFL) != 0 {
            let detail = if err & ERR_TEMP != 0 {
                "overheating, antenna switched off"
            } else if err & ERR_BUFFER_OVFL != 0 {
                "FIFO overflow"
            } else {
                "FIFO written at the wrong time"
            };
            return Err(Fault::Chip {
                step,
                error_reg: err,
                detail,
            });
        }
        // A bit collision usually breaks the parity of its byte too: with CollErr set, the collision is
        // the news, and the anticollision loop resolves it.
        let parity = err & ERR_PARITY != 0 && err & ERR_COLL == 0;
        if err & ERR_PROTOCOL != 0 || parity {
            return Err(Fault::Protocol {
                step,
                detail: format!(
                    "{} error (ErrorReg {err:#04x})",
                    if err & ERR_PARITY != 0 {
                        "parity"
                    } else {
                        "framing"
                    }
                ),
            });
        }
        let n = usize::from(self.read(Reg::FifoLevel)? & 0x7F);
        let data = self.read_fifo(n)?;
        let last_bits = self.read(Reg::Control)? & 0x07;
        let collision = if err & ERR_COLL != 0 {
            Some(self.read(Reg::Coll)?)
        } else {
            None
        };
        Ok(Answer::Frame {
            data,
            last_bits,
            collision,
        })
    }

    fn request(&mut self, cmd: u8, step: &'static str) -> Result<Option<u16>> {
        match self.transceive(&[cmd], 7, 0, step)? {
            Answer::Silence => Ok(None),
            // Cards of different types answer with different ATQAs, which collide. ISO 14443-3 has the
            // reader carry on: the anticollision loop then picks one card. The collided bits read as 0.
            Answer::Frame {
                data, last_bits: 0, ..
            } if data.len() == 2 => Ok(Some(u16::from_le_bytes([data[0], data[1]]))),
            Answer::Frame {
                data, last_bits, ..
            } => Err(Fault::Protocol {
                step,
                detail: format!(
                    "ATQA of {} bytes ({} bits in the last)",
                    data.len(),
                    last_bits
                ),
            }),
        }
    }

    /// REQA: wakes cards in the IDLE state. `None` when no card answers. A card that was halted stays
    /// silent until it leaves the field, so a card resting on the reader is reported once.
    pub fn reqa(&mut self) -> Result<Option<u16>> {
        self.request(PICC_REQA, "REQA")
    }

    /// WUPA: wakes idle *and* halted cards, so a card resting on the reader answers every time.
    pub fn wupa(&mut self) -> Result<Option<u16>> {
        self.request(PICC_WUPA, "WUPA")
    }

    /// Anticollision and select through every cascade level; returns the full UID and the final SAK.
    pub fn select(&mut self, atqa: u16) -> Result<Selected> {
        // ATQA b5..b1 (bit frame anticollision) must have exactly one bit set, else the card uses a
        // proprietary protocol (e.g. Topaz) that this loop cannot speak.
        if (atqa & 0x1F).count_ones() != 1 {
            return Err(Fault::Protocol {
                step: "REQA",
                detail: format!("ATQA {atqa:#06x}: proprietary anticollision, not ISO 14443-3"),
            });
        }
        let mut uid: Vec<u8> = Vec::with_capacity(10);
        for (level, &sel) in SEL_CL.iter().enumerate() {
            let level_no = level as u8 + 1;
            let uid_cl = self.anticollision(sel, level_no)?;
            let sak = self.select_level(sel, &uid_cl)?;
            if sak & SAK_UID_INCOMPLETE != 0 {
                if uid_cl[0] != CASCADE_TAG {
                    return Err(Fault::Protocol {
                        step: "select",
                        detail: format!(
                            "SAK {sak:#04x} says the UID continues but cascade level {level_no} does not \
                             start with the cascade tag 0x88"
                        ),
                    });
                }
                uid.extend_from_slice(&uid_cl[1..4]);
                continue;
            }
            uid.extend_from_slice(&uid_cl[0..4]);
            let uid = CardUid::from_bytes(&uid).map_err(|e| Fault::Protocol {
                step: "select",
                detail: e.to_string(),
            })?;
            return Ok(Selected { uid, atqa, sak });
        }
        Err(Fault::Protocol {
            step: "select",
            detail: "the card asks for a fourth cascade level".into(),
        })
    }

    /// One cascade level's anticollision loop: returns the 5 bytes UID-CLn + BCC, BCC checked.
    fn anticollision(&mut self, sel: u8, level: u8) -> Result<[u8; 5]> {
        let mut uid_cl = [0u8; 5];
        let mut known_bits: usize = 0;
        for _ in 0..MAX_ANTICOLLISION_ROUNDS {
            let full = known_bits / 8;
            let rest = (known_bits % 8) as u8;
            let sent = full + usize::from(rest > 0);
            let nvb = (((2 + full) as u8) << 4) | rest;
            let mut tx = Vec::with_capacity(2 + sent);
            tx.push(sel);
            tx.push(nvb);
            tx.extend_from_slice(&uid_cl[..sent]);
            let answer = self.transceive(&tx, rest, rest, "anticollision")?;
            let Answer::Frame {
                data,
                last_bits,
                collision,
            } = answer
            else {
                return Err(Fault::CardLost {
                    step: "anticollision",
                });
            };
            // Merge what came back into uid_cl: the first byte shares its low `rest` bits with what we sent.
            let keep = (1u8 << rest) - 1;
            for (j, &b) in data.iter().enumerate() {
                let Some(slot) = uid_cl.get_mut(full + j) else {
                    return Err(Fault::Protocol {
                        step: "anticollision",
                        detail: format!("answer of {} bytes is too long", data.len()),
                    });
                };
                *slot = if j == 0 {
                    (*slot & keep) | (b & !keep)
                } else {
                    b
                };
            }
            match collision {
                None => {
                    if full + data.len() != 5 || last_bits != 0 {
                        return Err(Fault::Protocol {
                            step: "anticollision",
                            detail: format!(
                                "incomplete UID: {} bytes after {known_bits} known bits",
                                data.len()
                            ),
                        });
                    }
                    let bcc = uid_cl[0] ^ uid_cl[1] ^ uid_cl[2] ^ uid_cl[3];
                    if bcc != uid_cl[4] {
                        return Err(Fault::Bcc {
                            level,
                            got: uid_cl[4],
                            expected: bcc,
                        });
                    }
                    return Ok(uid_cl);
                }
                Some(coll) => {
                    if coll & COLL_POS_NOT_VALID != 0 {
                        return Err(Fault::Collision {
                            detail: format!(
                                "collision position out of range at cascade level {level}"
                            ),
                        });
                    }
                    let mut pos = usize::from(coll & 0x1F);
                    if pos == 0 {
                        pos = 32;
                    }
                    if pos <= known_bits {
                        return Err(Fault::Collision {
                            detail: format!(
                                "no progress at cascade level {level}: collision at bit {pos} with \
                                 {known_bits} bits known"
                            ),
                        });
                    }
                    // Bits 0..pos-1 are valid; the colliding bit (pos-1, zero-based) is chosen as 1, which
                    // selects the card(s) whose UID has a 1 there; everything after is unknown again.
                    let bit = pos - 1;
                    uid_cl[bit / 8] |= 1 << (bit % 8);
                    uid_cl[bit / 8] &= ((1u16 << (bit % 8 + 1)) - 1) as u8;
                    for b in uid_cl.iter_mut().skip(bit / 8 + 1) {
                        *b = 0;
                    }
                    known_bits = pos;
                }
            }
        }
        Err(Fault::Collision {
            detail: format!("anticollision did not converge at cascade level {level}"),
        })
    }

    /// SELECT one cascade level; returns its SAK after checking the CRC_A.
    fn select_level(&mut self, sel: u8, uid_cl: &[u8; 5]) -> Result<u8> {
        let mut tx = Vec::with_capacity(9);
        tx.push(sel);
        tx.push(0x70);
        tx.extend_from_slice(uid_cl);
        let crc = crc_a(&tx);
        tx.extend_from_slice(&crc);
        match self.transceive(&tx, 0, 0, "select")? {
            Answer::Silence => Err(Fault::CardLost { step: "select" }),
            Answer::Frame {
                collision: Some(_), ..
            } => Err(Fault::Collision {
                detail: "two cards answered the select".into(),
            }),
            Answer::Frame {
                data, last_bits: 0, ..
            } if data.len() == 3 => {
                if crc_a(&data[..1]) != [data[1], data[2]] {
                    return Err(Fault::Crc { step: "SAK" });
                }
                Ok(data[0])
            }
            Answer::Frame {
                data, last_bits, ..
            } => Err(Fault::Protocol {
                step: "select",
                detail: format!(
                    "SAK frame of {} bytes ({} bits in the last)",
                    data.len(),
                    last_bits
                ),
            }),
        }
    }

    /// HLTA: puts the selected card to sleep until it leaves the field. A card that answers HLTA at all is
    /// not acknowledging it (ISO 14443-3 6.4.3).
    pub fn hlta(&mut self) -> Result<()> {
        let mut tx = vec![PICC_HLTA, 0x00];
        let crc = crc_a(&tx);
        tx.extend_from_slice(&crc);
        match self.transceive(&tx, 0, 0, "HLTA")? {
            Answer::Silence => Ok(()),
            Answer::Frame { data, .. } => Err(Fault::Protocol {
                step: "HLTA",
                detail: format!("the card answered HLTA with {} bytes", data.len()),
            }),
        }
    }

    /// One poll: REQA, select, HLTA. `Ok(None)` when no (new) card is on the reader.
    pub fn read_card(&mut self) -> Result<Option<CardTap>> {
        let Some(atqa) = self.reqa()? else {
            return Ok(None);
        };
        let selected = self.select(atqa)?;
        if let Err(e) = self.hlta() {
            // The UID is already known and checked; a card that ignores HLTA is only re-read next poll.
            tracing::debug!(target: "facereko::mfrc522", "HLTA: {e}");
        }
        Ok(Some(CardTap {
            uid: selected.uid,
            atqa: Some(selected.atqa),
            sak: Some(selected.sak),
        }))
    }
}

#[cfg(test)]
#[path = "mfrc522_tests.rs"]
mod tests;
