"""Campaign feedback: SES events (EventBridge, through the feedback queue) recorded on the
recipients' rows, the campaigns' counters and the workspaces' suppression lists."""

from crmjobs.campaign_handlers.feedback import feedback_handler

handler = feedback_handler()
