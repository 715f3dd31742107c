//! Frame codec: header, masking, close codes, UTF-8 validation (RFC 6455 §5).
