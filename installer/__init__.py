"""RegBridge installer."""
