"""Registers a prompt version in MLflow's Prompt Registry the way a team would, and prints, as
JSON, the version and the SHA-256 of the template text it registered, computed here: the test's
oracle, independent of airisk's code.

usage: register_prompt.py <tracking uri> <prompt name> <template>
"""
import hashlib
import json
import sys

import mlflow

uri, name, template = sys.argv[1], sys.argv[2], sys.argv[3]
mlflow.set_tracking_uri(uri)
pv = mlflow.genai.register_prompt(name=name, template=template, commit_message="from the test")
print(json.dumps({"version": str(pv.version), "sha256": hashlib.sha256(template.encode()).hexdigest()}))
