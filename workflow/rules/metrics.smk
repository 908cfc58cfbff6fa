# Placeholder (owned by PIPELINE-METHODS); replaced by the real rules.
