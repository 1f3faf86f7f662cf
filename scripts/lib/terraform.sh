# Sourced (from the repository root) by scripts that run terraform: sets $tf to the terraform binary (or empty when
# there is none) and, when a provider mirror exists (/opt/tf-plugins, or TF_PLUGIN_MIRROR),
# points TF_CLI_CONFIG_FILE at a CLI config that installs providers from it, offline.
tf=${TERRAFORM:-$(command -v terraform || echo /usr/local/bin/terraform)}
[ -x "$tf" ] || tf=""
tf_mirror=${TF_PLUGIN_MIRROR:-/opt/tf-plugins}
tf_source="the registry (no mirror at $tf_mirror)"
if [ -n "$tf" ] && [ -d "$tf_mirror" ]; then
    mkdir -p .cache/terraform
    export TF_CLI_CONFIG_FILE=$PWD/.cache/terraform/cli.tfrc
    cat >"$TF_CLI_CONFIG_FILE" <<RC
provider_installation {
  filesystem_mirror {
    path    = "$tf_mirror"
    include = ["registry.terraform.io/*/*"]
  }
  direct {
    exclude = ["registry.terraform.io/*/*"]
  }
}
RC
    tf_source=$tf_mirror
fi
