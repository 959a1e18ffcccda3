import { expect, test } from "@playwright/test";

// Runs before player.spec.ts (one worker, files in name order), so that the background
// indexing of the 600-frame test video with the tiny CLIP fixture is over before the playback
// timing tests start. scripts/e2e-server.sh points `model:` at that fixture.

test("the page shows indexing progress until every frame is indexed", async ({ page }) => {
  await page.goto("/");
  await expect(page.locator("#player")).toHaveAttribute("data-hydrated", "true", { timeout: 20_000 });
  const status = page.locator("#index-status");
  await expect(status).toBeVisible();
  // Polled every second: running (with frames/s and time left) or already done from the cache.
  await expect(status).toHaveAttribute("data-state", /running|done/, { timeout: 20_000 });
  const state = await status.getAttribute("data-state");
  if (state === "running") {
    await expect(status).toContainText(/Indexing with tiny-clip: \d+ \/ 600 frames .* frames\/s/);
  }
  await expect(status).toHaveAttribute("data-state", "done", { timeout: 120_000 });
  await expect(status).toHaveText("Indexed 600 frames with tiny-clip.");
});
