// sglang-mimo images: one Dockerfile, one target per GPU architecture.
//
//   sglang-mimo image bake-vars > build/image-vars.json      (values from patches/pin.json and patches/series)
//   docker buildx bake -f docker/docker-bake.hcl -f build/image-vars.json            both targets
//   docker buildx bake -f docker/docker-bake.hcl -f build/image-vars.json sm121a     one target
//
// The pinned values (SGLang version and tag, distribution, patch list, NCCL floor) are
// not written here: they come from the generated file, and docker/install.sh fails
// the build if they differ from patches/pin.json and patches/series.
// Another base: BASE_IMAGE=... (both targets) or BASE_IMAGE_SM90 / BASE_IMAGE_SM121A
// in the environment, or --set sm121a.args.BASE_IMAGE=...

// From the generated file (sglang-mimo image bake-vars).
variable "SGLANG_VERSION" { default = "" }
variable "SGLANG_TAG" { default = "" }
variable "DISTRIBUTION" { default = "" }
variable "PATCHES" { default = "" }
variable "NCCL_PACKAGE" { default = "" }
variable "NCCL_VERSION" { default = "" }
variable "NCCL_MIN_VERSION" { default = "" }

// Where the images go: <IMAGE>:<distribution>-<target>.
variable "IMAGE" { default = "sglang-mimo" }

// The release workflow (.github/workflows/release.yml) sets RELEASE=1 and
// IMAGE=<registry>/<namespace>/sglang-mimo; `--print` with the same two shows what it pushes.
// A release adds two moving tags per target, <sglang version>-<target> and latest-<target>,
// and SBOM + provenance attestations (BuildKit; the classic `docker` driver has none).
variable "RELEASE" { default = "" }

function "tags" {
  params = [target]
  result = concat(
    ["${IMAGE}:${DISTRIBUTION}-${target}"],
    notequal(RELEASE, "") ? ["${IMAGE}:${SGLANG_VERSION}-${target}", "${IMAGE}:latest-${target}"] : []
  )
}

// Upstream's CUDA 13 release image of the pinned version: one multi-arch tag
// (linux/amd64 and linux/arm64); each target takes its own platform from it.
variable "BASE_IMAGE" { default = "lmsysorg/sglang:${SGLANG_TAG}-cu130" }
variable "BASE_IMAGE_SM90" { default = "${BASE_IMAGE}" }
variable "BASE_IMAGE_SM121A" { default = "${BASE_IMAGE}" }

group "default" {
  targets = ["sm90", "sm121a"]
}

target "_common" {
  context    = "."
  dockerfile = "docker/Dockerfile"
  attest     = notequal(RELEASE, "") ? ["type=sbom", "type=provenance,mode=max"] : []
  args = {
    SGLANG_VERSION   = "${SGLANG_VERSION}"
    DISTRIBUTION     = "${DISTRIBUTION}"
    PATCHES          = "${PATCHES}"
    NCCL_PACKAGE     = "${NCCL_PACKAGE}"
    NCCL_VERSION     = "${NCCL_VERSION}"
    NCCL_MIN_VERSION = "${NCCL_MIN_VERSION}"
  }
}

// H100 / H200 (Hopper, sm_90a)
target "sm90" {
  inherits  = ["_common"]
  platforms = ["linux/amd64"]
  args = {
    BASE_IMAGE           = "${BASE_IMAGE_SM90}"
    GPU_TARGET           = "sm90"
    TORCH_CUDA_ARCH_LIST = "9.0a"
  }
  tags = tags("sm90")
}

// GB10 / DGX Spark (Grace-Blackwell, sm_121a)
target "sm121a" {
  inherits  = ["_common"]
  platforms = ["linux/arm64"]
  args = {
    BASE_IMAGE           = "${BASE_IMAGE_SM121A}"
    GPU_TARGET           = "sm121a"
    TORCH_CUDA_ARCH_LIST = "12.1a"
  }
  tags = tags("sm121a")
}
