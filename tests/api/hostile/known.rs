//! What the server already holds: the valid values mixed into hostile requests.

use super::*;

// ---------------------------------------------------------------------------------------------
// What the server already holds: the valid values mixed into hostile requests
// ---------------------------------------------------------------------------------------------

pub(super) struct Known {
    pub(super) alice: TestUser,
    pub(super) bob: TestUser,
    pub(super) carol: TestUser,
    pub(super) rooms: Vec<String>,
    pub(super) events: Vec<String>,
    pub(super) filter_id: String,
    pub(super) alias: String,
    pub(super) since: String,
}

impl Known {
    pub(super) fn room<'a>(&'a self, rng: &mut StdRng) -> &'a str {
        self.rooms.choose(rng).unwrap()
    }
    pub(super) fn event<'a>(&'a self, rng: &mut StdRng) -> &'a str {
        self.events.choose(rng).unwrap()
    }
    pub(super) fn user_id<'a>(&'a self, rng: &mut StdRng) -> &'a str {
        match rng.gen_range(0..4) {
            0 | 1 => &self.alice.user_id,
            2 => &self.bob.user_id,
            _ => &self.carol.user_id,
        }
    }
}

/// The user of one request to a [`Family::sacrificial`] endpoint. Requests are generated before
/// these users exist: their token, device and refresh token appear as placeholders, replaced
/// once they are registered.
#[derive(Clone, Copy, Debug)]
pub(super) struct Victim(pub(super) usize);

pub(super) const VICTIM_PASSWORD: &str = "victim-password";

impl Victim {
    pub(super) fn localpart(self) -> String {
        format!("victim{}", self.0)
    }
    pub(super) fn user_id(self) -> String {
        format!("@victim{}:localhost", self.0)
    }
    pub(super) fn token(self) -> String {
        format!("@@V{}T@@", self.0)
    }
    pub(super) fn device(self) -> String {
        format!("@@V{}D@@", self.0)
    }
    pub(super) fn refresh(self) -> String {
        format!("@@V{}R@@", self.0)
    }
}
