//! Object-store sync: everything a workspace holds, shipped to its organization's bucket
//! so it survives the loss of the machine it runs on, and restored from there on a fresh
//! machine.

pub mod compact;
pub mod gcs;
pub mod local;
pub mod manifest;
pub mod meter;
pub mod mirror;
pub mod replicator;
pub mod restore;
pub mod round;
pub mod s3;
pub mod seal;
pub mod segment;
pub mod store;
pub mod tail;
pub mod wal;

pub use s3::S3Access;
pub use store::{Bucket, ObjectMeta, Precondition, StoreError};
