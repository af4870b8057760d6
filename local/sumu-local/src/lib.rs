//! sumu-local: the API Gateway WebSocket emulator.

pub mod aws_service;
