"""klink-sync: hot and cold backups of K-Link / K-Box Compose deployments."""

__version__ = "0.1.0"
