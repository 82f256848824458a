//! The Pusher broadcaster against a strict local fake and a real Pusher-compatible server.
