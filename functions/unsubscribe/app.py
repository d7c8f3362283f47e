"""Unsubscribe links: GET shows the confirmation page, POST (RFC 8058 one-click) unsubscribes."""

from crmjobs.campaign_handlers.unsubscribe import unsubscribe_handler

handler = unsubscribe_handler()
