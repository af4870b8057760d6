#![doc = "End-to-end suites: real WebSocket clients against sumu-local and a real moto server."]
