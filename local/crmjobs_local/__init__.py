"""The embedded local runtime: template.yaml provisioned into moto, handlers run in-process.

`template` reads and resolves the SAM template, `provision` creates its resources in moto,
`sfn_bridge` lets Step Functions Lambda tasks run the project's Python handlers, `context`
loads handlers by file path and gives them a Lambda-like context object.
"""
