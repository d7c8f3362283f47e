"""The run dashboard served by `crmjobs dev` and `crmjobs dashboard --stack NAME`."""

from crmjobs_local.dashboard.app import Access, create_app

__all__ = ["Access", "create_app"]
