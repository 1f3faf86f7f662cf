#!/usr/bin/env bash
# Static checks of the infrastructure code:
#   1. `sam validate --lint` of template.yaml (aws-sam-cli from scripts/infra-tools.sh);
#   2. checkov on infra/: no failed check (each skip carries its reason next to the resource);
#   3. scripts/check_iam.py: each function's policy grants exactly the actions its code calls;
#   4. `terraform fmt -check`, then `terraform init -backend=false` + `terraform validate` of
#      both examples (which include both modules), with the AWS provider from a local mirror
#      (/opt/tf-plugins, or TF_PLUGIN_MIRROR) when there is one. Says loudly when terraform
#      is not installed, and then skips only this step.
# The apply against moto is a test (tests/local_deployment.rs), not a static check.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/infra-tools.sh install sam checkov

echo "infra-check: sam validate --lint template.yaml"
SAM_CLI_TELEMETRY=0 .venv-sam/bin/sam validate --lint -t template.yaml
echo "infra-check: checkov on infra/"
.venv-checkov/bin/checkov -d infra --framework terraform --quiet --compact --skip-download
echo "infra-check: IAM policies against the AWS calls the code makes (scripts/check_iam.py)"
.venv-checkov/bin/python scripts/check_iam.py

source scripts/lib/terraform.sh
if [ -z "$tf" ]; then
    echo "infra-check: ################################################################"
    echo "infra-check: TERRAFORM NOT INSTALLED: infra/ was NOT validated by terraform here."
    echo "infra-check: ################################################################"
    exit 0
fi
echo "infra-check: $("$tf" version | head -1), AWS provider from $tf_source"
"$tf" fmt -recursive -check infra
for dir in infra/examples/dev infra/examples/local; do
    "$tf" -chdir="$dir" init -backend=false -input=false >/dev/null
    "$tf" -chdir="$dir" validate
done
