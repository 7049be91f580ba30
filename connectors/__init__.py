"""RegBridge connectors."""
