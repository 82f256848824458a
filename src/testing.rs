//! Local fakes of the services herald talks to, for tests and `herald bench`.
//!
//! Owns: nothing herald needs in production. Does not own: any delivery logic.
