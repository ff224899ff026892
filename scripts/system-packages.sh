# Sourced by scripts/test: Debian packages some tests use, installed when missing.
# chromium for the Web UI and web page tests (Playwright drives it and downloads no browser),
# fonts-noto-cjk so that the web page's Chinese labels render in their screenshots,
# docker-compose to validate docker-compose.yml (no Docker engine needed), openssl for the
# TLS test certificates, faketime to run a worker on a clock that is off (the shared window).
missing=()
command -v chromium >/dev/null || missing+=(chromium)
[ -d /usr/share/fonts/opentype/noto ] || missing+=(fonts-noto-cjk)
command -v docker-compose >/dev/null || missing+=(docker-compose)
command -v openssl >/dev/null || missing+=(openssl)
command -v faketime >/dev/null || missing+=(faketime)
if ((${#missing[@]})); then
    echo "installing ${missing[*]} with apt-get (log: /tmp/bankrecon-apt.log)" >&2
    if ! { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"; } \
        >/tmp/bankrecon-apt.log 2>&1; then
        tail -n 20 /tmp/bankrecon-apt.log >&2
        echo "could not install ${missing[*]} (as root: apt-get install ${missing[*]}); the tests that need them fail or skip" >&2
    fi
fi
