//! `${faker.METHOD}`: fake data from the [`fake`] crate (English locale).
//!
//! Method names follow Python Faker's and are matched case-insensitively when a template is
//! parsed; an unknown name makes the placeholder unknown (reported once, left as written).
//!
//! | method | example |
//! |---|---|
//! | `name`, `first_name`, `last_name`, `name_with_title` | `Ada Lovelace`, `Ada`, `Lovelace`, `Dr. Ada Lovelace` |
//! | `email` (alias `safe_email`), `free_email` | `ada@example.com`, `ada@gmail.com` (`email` uses reserved example domains, so a load test never mails a real address) |
//! | `user_name`, `password` | `ada_lovelace`, 8 to 15 characters |
//! | `phone_number`, `cell_number` | `(555) 555-0100` |
//! | `street_address`, `street_name`, `building_number` | `123 Main Street` |
//! | `city`, `state`, `zipcode` (alias `postcode`), `country`, `country_code` | `Springfield`, `Ohio`, `12345`, `France`, `FR` |
//! | `company_name` (alias `company`), `catch_phrase`, `industry`, `job` | `Acme Inc` |
//! | `word`, `sentence`, `paragraph` | lorem ipsum |
//! | `uuid` | a random UUID v4 (as `${uuid()}`) |
//! | `ipv4`, `ipv6`, `mac_address`, `user_agent`, `domain_suffix` | `192.0.2.7` |
//! | `credit_card_number`, `currency_code`, `boolean` | `4111...`, `EUR`, `true` |

use std::fmt;

use fake::faker::{
    address::en as address, boolean::en as boolean, company::en as company,
    creditcard::en as creditcard, currency::en as currency, internet::en as internet,
    job::en as job, lorem::en as lorem, name::en as name, phone_number::en as phone,
};
use fake::Fake;
use rand::rngs::ThreadRng;

type Generate = fn(&mut ThreadRng) -> String;

struct Entry {
    name: &'static str,
    generate: Generate,
}

macro_rules! methods {
    ($($name:literal => |$rng:ident| $body:expr,)+) => {
        &[$(Entry { name: $name, generate: |$rng: &mut ThreadRng| -> String { $body } },)+]
    };
}

/// Every method, sorted by name (aliases included).
static METHODS: &[Entry] = methods! {
    "boolean" => |r| boolean::Boolean(50).fake_with_rng::<bool, _>(r).to_string(),
    "building_number" => |r| address::BuildingNumber().fake_with_rng(r),
    "catch_phrase" => |r| company::CatchPhrase().fake_with_rng(r),
    "cell_number" => |r| phone::CellNumber().fake_with_rng(r),
    "city" => |r| address::CityName().fake_with_rng(r),
    "company" => |r| company::CompanyName().fake_with_rng(r),
    "company_name" => |r| company::CompanyName().fake_with_rng(r),
    "country" => |r| address::CountryName().fake_with_rng(r),
    "country_code" => |r| address::CountryCode().fake_with_rng(r),
    "credit_card_number" => |r| creditcard::CreditCardNumber().fake_with_rng(r),
    "currency_code" => |r| currency::CurrencyCode().fake_with_rng(r),
    "domain_suffix" => |r| internet::DomainSuffix().fake_with_rng(r),
    "email" => |r| internet::SafeEmail().fake_with_rng(r),
    "first_name" => |r| name::FirstName().fake_with_rng(r),
    "free_email" => |r| internet::FreeEmail().fake_with_rng(r),
    "industry" => |r| company::Industry().fake_with_rng(r),
    "ipv4" => |r| internet::IPv4().fake_with_rng(r),
    "ipv6" => |r| internet::IPv6().fake_with_rng(r),
    "job" => |r| job::Title().fake_with_rng(r),
    "last_name" => |r| name::LastName().fake_with_rng(r),
    "mac_address" => |r| internet::MACAddress().fake_with_rng(r),
    "name" => |r| name::Name().fake_with_rng(r),
    "name_with_title" => |r| name::NameWithTitle().fake_with_rng(r),
    "paragraph" => |r| lorem::Paragraph(3..6).fake_with_rng(r),
    "password" => |r| internet::Password(8..16).fake_with_rng(r),
    "phone_number" => |r| phone::PhoneNumber().fake_with_rng(r),
    "postcode" => |r| address::ZipCode().fake_with_rng(r),
    "safe_email" => |r| internet::SafeEmail().fake_with_rng(r),
    "sentence" => |r| lorem::Sentence(4..10).fake_with_rng(r),
    "state" => |r| address::StateName().fake_with_rng(r),
    "street_address" => |r| {
        let number: String = address::BuildingNumber().fake_with_rng(r);
        let street: String = address::StreetName().fake_with_rng(r);
        format!("{number} {street}")
    },
    "street_name" => |r| address::StreetName().fake_with_rng(r),
    "user_agent" => |r| internet::UserAgent().fake_with_rng(r),
    "user_name" => |r| internet::Username().fake_with_rng(r),
    "uuid" => |_r| crate::functions::uuid_v4(),
    "word" => |r| lorem::Word().fake_with_rng(r),
    "zipcode" => |r| address::ZipCode().fake_with_rng(r),
};

/// A faker method, resolved when the template is parsed.
#[derive(Clone, Copy)]
pub struct FakerMethod(&'static Entry);

impl FakerMethod {
    /// Finds a method by name, case-insensitively.
    pub fn lookup(name: &str) -> Option<Self> {
        METHODS
            .iter()
            .find(|entry| entry.name.eq_ignore_ascii_case(name))
            .map(FakerMethod)
    }

    /// The method's name (lower case).
    pub fn name(&self) -> &'static str {
        self.0.name
    }

    /// Generates one value.
    pub fn generate(&self) -> String {
        (self.0.generate)(&mut rand::rng())
    }

    /// Every method name, sorted.
    pub fn names() -> impl Iterator<Item = &'static str> {
        METHODS.iter().map(|entry| entry.name)
    }
}

impl PartialEq for FakerMethod {
    fn eq(&self, other: &Self) -> bool {
        self.0.name == other.0.name
    }
}

impl Eq for FakerMethod {}

impl fmt::Debug for FakerMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FakerMethod({:?})", self.0.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_method_generates_text_and_names_are_sorted_and_unique() {
        let names: Vec<_> = FakerMethod::names().collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(names, sorted);
        for name in names {
            let method = FakerMethod::lookup(name).expect("listed method");
            let value = method.generate();
            assert!(!value.is_empty(), "{name} gave an empty value");
        }
        let email = FakerMethod::lookup("EMAIL")
            .expect("case-insensitive")
            .generate();
        assert!(email.contains('@'), "{email}");
        assert!(FakerMethod::lookup("no_such_method").is_none());
    }
}
