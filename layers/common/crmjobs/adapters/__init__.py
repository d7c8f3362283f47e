"""Adapters to AWS services and OpenSearch behind small interfaces, created lazily."""
