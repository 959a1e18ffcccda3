import { expect, Page, test } from "@playwright/test";

import { counterFrame, displayedPatternIndex, openPlayer } from "./helpers";

// scripts/e2e-server.sh puts long.mp4 (2400 frames, the index pattern in every frame) in the
// library; nothing else opens it, so this test sees its coarse-to-fine index from the start.
test.use({ viewport: { width: 1920, height: 1080 } });

const LONG_FRAMES = 2400;

async function chartState(page: Page) {
  return page.locator("#chart").evaluate((c) => ({
    covered: Number(c.getAttribute("data-covered")),
    spacing: Number(c.getAttribute("data-spacing")),
  }));
}

test("after the first pass the chart spans the whole video while it refines, and a click seeks exactly", async ({ page }) => {
  await page.goto("/videos");
  await expect(page.locator("#library")).toHaveAttribute("data-hydrated", "true", { timeout: 20_000 });
  const id = await page.locator('tr.video[data-name="long.mp4"]').getAttribute("data-id");
  await openPlayer(page, `/?video=${id}`);

  // Every frame on the chart while samples are still more than one frame apart.
  const seen: { covered: number; spacing: number }[] = [];
  await expect
    .poll(
      async () => {
        const state = await chartState(page);
        seen.push(state);
        return state.covered === LONG_FRAMES && state.spacing > 1;
      },
      { timeout: 60_000, intervals: [100] },
    )
    .toBe(true);
  const refining = seen[seen.length - 1];
  await expect(page.locator("#chart-fineness")).toContainText(/1 sample \/ [0-9.]+ s, refining…/);
  const line = await page.locator("#index-status").innerText();
  expect(line).toMatch(/pass \d+ of \d+/);
  console.log(`chart spans ${refining.covered} frames at 1 sample / ${refining.spacing} frames; status: ${line}`);
  await page.screenshot({ path: "test-results/progressive-refining.png" });

  // A click anywhere seeks to exactly the frame the chart maps it to, refining or not.
  const box = (await page.locator("#chart").boundingBox())!;
  for (const fraction of [0.13, 0.52, 0.91]) {
    await page.mouse.click(box.x + box.width * fraction, box.y + box.height / 2);
    const frame = await counterFrame(page);
    await expect(page.locator("#frame-view")).toHaveAttribute("data-frame", String(frame), { timeout: 10_000 });
    expect(await displayedPatternIndex(page)).toBe(frame);
  }

  // Refined to every frame in the end: spacing 1, no "refining".
  await expect(page.locator("#index-status")).toHaveAttribute("data-state", "done", { timeout: 120_000 });
  await expect(page.locator("#chart")).toHaveAttribute("data-spacing", "1", { timeout: 20_000 });
  await expect(page.locator("#chart")).toHaveAttribute("data-covered", String(LONG_FRAMES));
  await expect(page.locator("#chart-fineness")).toHaveCount(0);
  await page.screenshot({ path: "test-results/progressive-refined.png" });
});
