"""Logs a model version to MLflow the way a team would (a run's artifacts, then a registered
version), and prints, as JSON, the version and the manifest digest of the files it logged,
computed here from the local files: the test's oracle, independent of airisk's code.

usage: log_version.py <tracking uri> <model name> <content marker>
"""
import hashlib
import json
import os
import sys
import tempfile

import mlflow
from mlflow import MlflowClient

uri, name, marker = sys.argv[1], sys.argv[2], sys.argv[3]
mlflow.set_tracking_uri(uri)
client = MlflowClient()
try:
    client.create_registered_model(name)
except Exception:  # already exists
    pass
root = tempfile.mkdtemp()
model = os.path.join(root, "model")
os.makedirs(os.path.join(model, "sub"))
with open(os.path.join(model, "MLmodel"), "w") as f:
    f.write("flavors: {}\nmarker: %s\n" % marker)
with open(os.path.join(model, "sub", "weights.bin"), "wb") as f:
    f.write(marker.encode() + b"\x00\x01weights" * 1000)
with open(os.path.join(model, "requirements.txt"), "w") as f:
    f.write("scikit-learn==1.5.0\n")
with mlflow.start_run() as run:
    mlflow.log_artifacts(model, artifact_path="model")
    source = client.get_run(run.info.run_id).info.artifact_uri + "/model"
mv = client.create_model_version(
    name, source, run_id=run.info.run_id, tags={"team": "credit-risk"}, description="gbm " + marker
)
lines = []
for dirpath, _, files in os.walk(model):
    for fname in files:
        full = os.path.join(dirpath, fname)
        rel = os.path.relpath(full, model).replace(os.sep, "/")
        data = open(full, "rb").read()
        lines.append((rel.encode(), "%s  %d  %s\n" % (hashlib.sha256(data).hexdigest(), len(data), rel)))
manifest = "".join(line for _, line in sorted(lines))
print(json.dumps({"version": mv.version, "digest": hashlib.sha256(manifest.encode()).hexdigest()}))
