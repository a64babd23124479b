//! An offline Discord voice server.
