"""crmjobs: a multi-tenant CRM's background jobs on AWS serverless."""
