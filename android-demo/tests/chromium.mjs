// Headless Chromium as the demo's tests run it (e2e.mjs, chromium_speed.mjs): Debian's /usr/bin/chromium
// (or $CHROMIUM) driven by playwright-core.
//
// What works here as root with Debian's chromium: no sandbox, no GPU, and none of Chrome's own background
// traffic (updates, sync, field trials), which this machine's closed network refuses.
export const CHROMIUM_ARGS = [
  '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--disable-default-apps', '--disable-extensions',
  '--disable-client-side-phishing-detection', '--allow-browser-signin=false', '--no-pings',
  '--disable-domain-reliability',
  '--disable-features=AutofillServerCommunication,OptimizationHints,Translate,MediaRouter,' +
    'NetworkTimeServiceQuerying,AccountConsistency,SigninInterceptBubble',
];

export const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
