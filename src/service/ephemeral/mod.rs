//! What is not a room event but reaches clients through sync: typing notifications, read
//! receipts, presence and send-to-device messages.

pub mod presence;
pub mod to_device;
mod typing_and_receipts;

pub use typing_and_receipts::{EphemeralService, MAX_TYPING_TIMEOUT, ReceiptRecord};
