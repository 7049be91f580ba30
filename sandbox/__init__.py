"""RegBridge sandbox."""
