//! Opening handshake (RFC 6455 §4), client and server.
