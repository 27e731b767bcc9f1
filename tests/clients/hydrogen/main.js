// Hydrogen's own start-up (its web platform's main), with the asset paths this test serves.
// Olm is loaded by Hydrogen itself from assetPaths.olm (a script tag, then its wasm); the
// service worker adds the access token to authenticated media requests (/_matrix/client/v1/media).
import { Platform, FeatureSet, createNavigation, createRouter, RootViewModel } from "hydrogen-view-sdk";

const assetPaths = {
  downloadSandbox: "/sdk/asset-build/assets/download-sandbox.html",
  worker: "/sdk/asset-build/assets/main.js",
  olm: {
    wasm: "/olm/olm.wasm",
    legacyBundle: "/olm/olm_legacy.js",
    wasmBundle: "/olm/olm.js",
  },
  serviceWorker: "/sw.js",
};

async function main() {
  const container = document.getElementById("app");
  // The page waits for the service worker to control it, so that the first avatar already
  // goes through it (without it, authenticated media has no token and fails).
  await navigator.serviceWorker.register(assetPaths.serviceWorker);
  await navigator.serviceWorker.ready;
  for (let i = 0; i < 200 && !navigator.serviceWorker.controller; i++) {
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  if (!navigator.serviceWorker.controller) throw new Error("the service worker never took control of the page");
  const platform = new Platform({ container, assetPaths, configURL: "/config.json", options: { development: false } });
  await platform.init();
  const features = await FeatureSet.load(platform.settingsStorage);
  const navigation = createNavigation();
  platform.setNavigation(navigation);
  const urlRouter = createRouter({ navigation, history: platform.history });
  urlRouter.attach();
  const vm = new RootViewModel({ platform, navigation, urlRouter, features });
  await vm.load();
  platform.createAndMountRootView(vm);
  window.hearthTest = { platform, navigation, rootViewModel: vm };
}

main().catch((err) => {
  window.hearthTestError = `${err?.stack ?? err}`;
  console.error("hydrogen start failed", err);
});
