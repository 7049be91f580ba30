"""RegBridge config."""
