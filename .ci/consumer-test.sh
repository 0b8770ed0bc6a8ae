#!/usr/bin/env bash
# The consumer test: what a user of the NuGet package does. Packs Transformers.ML into a local folder; outside the
# repository, makes a new console project, adds the package from that folder (NuGet for its dependencies), puts the
# README's quick-start program in it, builds and runs it. The program trains a tiny model, generates, saves, reloads,
# generates again and exits 0 when both texts are the same. Prints one line "consumer test: passed|failed (...)".
set -uo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
work=$(mktemp -d /tmp/transformers-ml-consumer.XXXXXX)
version="0.1.0-ci.$(date +%Y%m%d%H%M%S)"
log="$work/log.txt"
result=failed
cleanup() {
  rm -rf "$work" "${NUGET_PACKAGES:-$HOME/.nuget/packages}/transformers.ml/$version"
}
trap cleanup EXIT
start=$(date +%s)
(
  set -e
  dotnet pack "$repo/src/Transformers.ML" -c Release -o "$work/feed" -p:Version="$version"
  cd "$work"
  dotnet new console -o app --framework net10.0
  cd app
  cat > nuget.config <<XML
<?xml version="1.0" encoding="utf-8"?>
<configuration>
  <packageSources>
    <clear />
    <add key="local" value="$work/feed" />
    <add key="nuget.org" value="https://api.nuget.org/v3/index.json" />
  </packageSources>
</configuration>
XML
  dotnet add package Transformers.ML --version "$version"
  # The README's quick-start program, verbatim: the C# block between the quick-start markers.
  awk '/<!-- quick-start:begin -->/ { on = 1; next } /<!-- quick-start:end -->/ { on = 0 } on' "$repo/README.md" \
    | sed -e '/^```/d' > Program.cs
  test -s Program.cs
  cp "$repo/examples/data/text/tinyshakespeare.txt" .
  dotnet build -c Release
  dotnet run -c Release --no-build
) > "$log" 2>&1
[ $? -eq 0 ] && result=passed
elapsed=$(( $(date +%s) - start ))
if [ "$result" = passed ]; then
  grep -E "^ROMEO:|^Reloaded" "$log" | head -3 | sed 's/^/  /'
else
  tail -40 "$log"
fi
echo "consumer test: $result (package $version, new console project outside the repository, ${elapsed} s)"
[ "$result" = passed ]
