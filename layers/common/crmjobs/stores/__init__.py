"""One store per entity over its PynamoDB model: reads scoped by workspace, writes with
their conditions. Stores raise the project's errors (NotFound, Conflict), never DynamoDB's."""
