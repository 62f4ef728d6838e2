# Scenarios, drills, approvals and the compensation ledger arrive with the drills issue.
