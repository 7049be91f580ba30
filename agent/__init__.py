"""RegBridge agent."""
