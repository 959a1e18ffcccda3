import { expect, test } from "@playwright/test";

import { expectShowing, openPlayer } from "./helpers";

// The library search (`/search`) on the e2e server's library (scripts/e2e-server.sh): whatever
// videos are indexed by now are searched; the default video is, once its index is done.
test.use({ viewport: { width: 1400, height: 1000 } });

test("a library search opens the video of a result at exactly its peak frame", async ({ page }) => {
  // The default video's index first (it opens with the server).
  await openPlayer(page, "/");
  await expect(page.locator("#index-status")).toHaveAttribute("data-state", "done", { timeout: 120_000 });

  await page.goto("/search");
  await expect(page.locator("#library-search")).toHaveAttribute("data-hydrated", "true");
  await page.fill("#library-text", "wall");
  await page.click("#library-go");
  const first = page.locator(".library-hit").first();
  await expect(first).toBeVisible({ timeout: 30_000 });
  await expect(page.locator("#library-summary")).toContainText("vectors of");
  // The address bar is a share link of the search.
  expect(new URL(page.url()).searchParams.get("q")).toBe("wall");
  // Every result names a video by id and file name, never a path.
  for (const name of await page.locator(".library-hit .name").allTextContents()) {
    expect(name).not.toContain("/");
  }
  const frame = Number(await first.getAttribute("data-frame"));
  const video = await first.getAttribute("data-video");
  await expect(first.locator("img")).toBeVisible({ timeout: 20_000 });
  await first.locator("a").click();
  await expect(page.locator("#player")).toHaveAttribute("data-hydrated", "true", { timeout: 20_000 });
  expect(new URL(page.url()).searchParams.get("video")).toBe(video);
  // The exact frame, read from its pixels, and the query is a prompt on the chart.
  await expectShowing(page, frame);
  await expect(page.locator("#prompt-list li.prompt").first()).toHaveAttribute("data-prompt", "wall");
});

test("a search link runs its search, and a bad one says why", async ({ page }) => {
  await page.goto("/search?q=wall&per=1");
  await expect(page.locator("#library-search")).toHaveAttribute("data-hydrated", "true");
  await expect(page.locator(".library-hit").first()).toBeVisible({ timeout: 30_000 });
  const videos = await page.locator(".library-hit").evaluateAll((hits) => hits.map((h) => h.getAttribute("data-video")));
  expect(new Set(videos).size).toBe(videos.length); // at most one moment per video
  await page.goto("/search?q=wall&video=0123456789abcdef");
  await expect(page.locator("#library-error")).toContainText("no video 0123456789abcdef");
});
