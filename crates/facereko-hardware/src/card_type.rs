//! The card family named from its ATQA and SAK (NXP AN10833 "MIFARE type identification procedure"), for
//! `facereko card read` and the enrolment pages. A guess from two bytes: good enough to tell an installer
//! "this is a MIFARE Classic 1K", not a security property.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A card family as far as ATQA/SAK tell.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CardType {
    MifareMini,
    MifareClassic1K,
    MifareClassic4K,
    /// MIFARE Ultralight, Ultralight C/EV1 or an NTAG21x: SAK 0x00 tells them apart only with GET_VERSION.
    MifareUltralight,
    MifarePlus2K,
    MifarePlus4K,
    MifareDesfire,
    /// Any other ISO 14443-4 card (bank cards, phones, passports).
    Iso14443_4,
    /// A SmartMX or similar chip that also emulates MIFARE Classic.
    SmartMxWithClassic,
    Unknown,
}

impl CardType {
    /// Names the card from its ATQA (as a little-endian `u16`, so a Classic 1K reads 0x0004) and SAK.
    pub fn from_atqa_sak(atqa: Option<u16>, sak: u8) -> Self {
        // SAK bit 2 means "UID not complete": never the final SAK, so treat the card as unknown.
        if sak & 0x04 != 0 {
            return CardType::Unknown;
        }
        match sak {
            0x09 => CardType::MifareMini,
            0x08 | 0x88 => CardType::MifareClassic1K,
            0x18 => CardType::MifareClassic4K,
            0x00 => CardType::MifareUltralight,
            0x10 => CardType::MifarePlus2K,
            0x11 => CardType::MifarePlus4K,
            0x28 | 0x38 => CardType::SmartMxWithClassic,
            0x20 => match atqa {
                Some(0x0344) | Some(0x0304) => CardType::MifareDesfire,
                _ => CardType::Iso14443_4,
            },
            s if s & 0x20 != 0 => CardType::Iso14443_4,
            _ => CardType::Unknown,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            CardType::MifareMini => "MIFARE Mini",
            CardType::MifareClassic1K => "MIFARE Classic 1K",
            CardType::MifareClassic4K => "MIFARE Classic 4K",
            CardType::MifareUltralight => "MIFARE Ultralight / NTAG",
            CardType::MifarePlus2K => "MIFARE Plus 2K",
            CardType::MifarePlus4K => "MIFARE Plus 4K",
            CardType::MifareDesfire => "MIFARE DESFire",
            CardType::Iso14443_4 => "ISO 14443-4 card",
            CardType::SmartMxWithClassic => "SmartMX with MIFARE Classic",
            CardType::Unknown => "unknown card type",
        }
    }
}

impl fmt::Display for CardType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl crate::CardTap {
    /// The card family, when the reader reported a SAK.
    pub fn card_type(&self) -> Option<CardType> {
        self.sak.map(|sak| CardType::from_atqa_sak(self.atqa, sak))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_common_cards() {
        assert_eq!(
            CardType::from_atqa_sak(Some(0x0004), 0x08),
            CardType::MifareClassic1K
        );
        assert_eq!(
            CardType::from_atqa_sak(Some(0x0002), 0x18),
            CardType::MifareClassic4K
        );
        assert_eq!(
            CardType::from_atqa_sak(Some(0x0044), 0x00),
            CardType::MifareUltralight
        );
        assert_eq!(
            CardType::from_atqa_sak(Some(0x0344), 0x20),
            CardType::MifareDesfire
        );
        assert_eq!(
            CardType::from_atqa_sak(Some(0x0004), 0x20),
            CardType::Iso14443_4
        );
        assert_eq!(CardType::from_atqa_sak(None, 0x04), CardType::Unknown);
        assert_eq!(CardType::MifareClassic1K.to_string(), "MIFARE Classic 1K");
    }

    #[test]
    fn a_tap_without_sak_has_no_type() {
        let uid = "04:A2:2B:19".parse().unwrap();
        let mut tap = crate::CardTap::new(uid);
        assert_eq!(tap.card_type(), None);
        tap.sak = Some(0x08);
        assert_eq!(tap.card_type(), Some(CardType::MifareClassic1K));
    }
}
