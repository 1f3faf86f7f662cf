#!/usr/bin/env bash
# Checks the Terraform in infra/: formatting, then `terraform validate` of the example
# deployment (which includes the module), with the AWS provider from a local mirror
# (/opt/tf-plugins, or TF_PLUGIN_MIRROR) when there is one. Says loudly when terraform
# is not installed, and then checks nothing.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

tf=${TERRAFORM:-$(command -v terraform || echo /usr/local/bin/terraform)}
if [ ! -x "$tf" ]; then
    echo "infra-check: ################################################################"
    echo "infra-check: TERRAFORM NOT INSTALLED: infra/ was NOT validated on this machine."
    echo "infra-check: ################################################################"
    exit 0
fi
mirror=${TF_PLUGIN_MIRROR:-/opt/tf-plugins}
rc=$(mktemp)
trap 'rm -f "$rc"' EXIT
if [ -d "$mirror" ]; then
    cat >"$rc" <<RC
provider_installation {
  filesystem_mirror {
    path    = "$mirror"
    include = ["registry.terraform.io/*/*"]
  }
  direct {
    exclude = ["registry.terraform.io/*/*"]
  }
}
RC
    export TF_CLI_CONFIG_FILE=$rc
    echo "infra-check: $("$tf" version | head -1), AWS provider from $mirror"
else
    echo "infra-check: $("$tf" version | head -1), AWS provider from the registry (no mirror at $mirror)"
fi
"$tf" fmt -recursive -check infra
for dir in infra/examples/dev; do
    "$tf" -chdir="$dir" init -backend=false -input=false >/dev/null
    "$tf" -chdir="$dir" validate
done
