//! TensorBoard event files, written without TensorFlow: `Event` protobufs ([`proto`], prost
//! derive) in TFRecord framing ([`record`]: length, masked CRC32C of the length, data, masked
//! CRC32C of the data), first the `brain.Event:2` file-version event, then scalars
//! (`simple_value`), PNG images, text (the text plugin) and the hyper-parameters (the hparams
//! plugin's `_hparams_/experiment`, `_hparams_/session_start_info` and
//! `_hparams_/session_end_info`, as PyTorch's `SummaryWriter.add_hparams` writes them).
//!
//! [`EventWriter`] appends to one file, `DIR/events.out.tfevents.<secs>.<host>.<pid>`
//! (TensorBoard's naming), created new in `DIR`; it is a stream, the one kind of file not written
//! by `resnext_io::write_atomic` (TensorBoard reads it while it grows). `DIR` must be a directory
//! (it is created when absent); a symbolic link or any other file there is refused, and the event
//! file is created exclusively, so nothing is followed or replaced.
//!
//! [`TensorBoard`] is the training loop's [`Observer`](crate::trainer::Observer) that writes a
//! run's `tb/` folder (`train.tensorboard = true`).

pub mod observer;
pub mod proto;
pub mod record;
pub mod writer;

pub use observer::TensorBoard;
pub use writer::{flatten_toml, EventWriter, HParam, SessionStatus};
