"""Handlers of the campaign family's event-fed functions, one module per function (so each
cold start imports only its own): they read the event shapes (SQS records of EventBridge
events, API Gateway HTTP requests, DynamoDB stream records) and call the services, which
never see an event."""
