"""Campaigns table stream: a campaign no longer scheduled loses its one-time schedule."""

from crmjobs.campaign_handlers.stream import campaign_stream_handler

handler = campaign_stream_handler()
