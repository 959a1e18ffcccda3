import { expect, Page, test } from "@playwright/test";

import { counterFrame, displayedPatternIndex, expectShowing, FRAMES, openPlayer } from "./helpers";

async function seekWithSlider(page: Page, frame: number) {
  await page.locator("#frame-slider").evaluate((el, value) => {
    const input = el as HTMLInputElement;
    input.value = String(value);
    input.dispatchEvent(new Event("input", { bubbles: true }));
  }, frame);
}

test("the page hydrates and shows the video's name and size", async ({ page }) => {
  await openPlayer(page);
  await expect(page.locator("#video-name")).toHaveText("pattern720.mp4");
  await expect(page.locator("#video-size")).toContainText("1280×720");
  await expect(page.locator("#video-size")).toContainText(`30.00 fps · ${FRAMES} frames`);
  await expect(page.locator("#video-meta")).toHaveAttribute("data-frames", String(FRAMES));
  expect(Number(await page.locator("#video-meta").getAttribute("data-fps"))).toBeCloseTo(30, 3);
  await expectShowing(page, 0);
  await expect(page.locator("#error")).toHaveCount(0);
});

test("play advances at the video's fps without dropping frames, pause stops", async ({ page }) => {
  await openPlayer(page);
  await expectShowing(page, 0);
  const fps = Number(await page.locator("#video-meta").getAttribute("data-fps"));
  await page.locator("#btn-play").click();
  await expect.poll(() => counterFrame(page)).toBeGreaterThan(5);
  const t0 = Date.now();
  const f0 = await counterFrame(page);
  await page.waitForTimeout(3000);
  const f1 = await counterFrame(page);
  const seconds = (Date.now() - t0) / 1000;
  const rate = (f1 - f0) / seconds;
  const stats = page.locator("#playback-stats");
  const displayed = Number(await stats.getAttribute("data-displayed"));
  const dropped = Number(await stats.getAttribute("data-dropped"));
  console.log(
    `playback: clock ${rate.toFixed(2)} frames/s; shown ${displayed}, skipped ${dropped} ` +
      `(${((displayed / Math.max(1, displayed + dropped)) * fps).toFixed(2)} fps shown of ${fps})`,
  );
  const latencies = await page.evaluate(() =>
    performance
      .getEntriesByType("resource")
      .filter((e) => e.name.includes("/frame"))
      .map((e) => e.duration)
      .sort((x, y) => x - y),
  );
  const pct = (p: number) => latencies[Math.round((latencies.length - 1) * p)]?.toFixed(1) ?? "-";
  console.log(`frame requests: ${latencies.length}, round trip p50 ${pct(0.5)} ms, p95 ${pct(0.95)} ms, max ${pct(1)} ms`);
  expect(rate).toBeGreaterThan(fps * 0.75);
  expect(rate).toBeLessThan(fps * 1.25);
  expect(dropped).toBeLessThan(0.2 * displayed);

  await page.locator("#btn-pause").click();
  const paused = await counterFrame(page);
  await page.waitForTimeout(1000);
  expect(await counterFrame(page)).toBe(paused);
  // Paused on a frame: the image is exactly that frame, and the URL is its share link.
  await expectShowing(page, paused);
  expect(new URL(page.url()).searchParams.get("frame")).toBe(String(paused));
});

test("reset returns to frame 0", async ({ page }) => {
  await openPlayer(page, "/?frame=321");
  await expectShowing(page, 321);
  await page.locator("#btn-reset").click();
  await expectShowing(page, 0);
});

test("?frame=123 opens on the real frame 123", async ({ page }) => {
  await openPlayer(page, "/?frame=123");
  await expectShowing(page, 123);
  await expect(page.locator("#frame-time")).toContainText("00:04.10");
});

test("the URL follows seeks, and every seek shows the exact frame", async ({ page }) => {
  await openPlayer(page);
  await seekWithSlider(page, 250);
  await expectShowing(page, 250);
  expect(new URL(page.url()).searchParams.get("frame")).toBe("250");
  for (const frame of [17, 598, 3, 444, 445, 130, 599]) {
    await seekWithSlider(page, frame);
    await expectShowing(page, frame);
    expect(new URL(page.url()).searchParams.get("frame")).toBe(String(frame));
  }
});

for (const bad of ["abc", "-5", "100000", "1.5"]) {
  test(`a bad frame value (${bad}) shows an error and the page keeps working`, async ({ page }) => {
    await openPlayer(page, `/?frame=${bad}`);
    const error = page.locator("#error");
    await expect(error).toBeVisible();
    await expect(error).toContainText("frame");
    await expectShowing(page, 0);
    await seekWithSlider(page, 42);
    await expectShowing(page, 42);
    await expect(error).toHaveCount(0);
  });
}

test("two tabs have independent playheads", async ({ context }) => {
  const a = await context.newPage();
  const b = await context.newPage();
  await openPlayer(a, "/?frame=10");
  await openPlayer(b, "/?frame=300");
  await expectShowing(a, 10);
  await expectShowing(b, 300);
  await a.locator("#btn-play").click();
  await a.waitForTimeout(1000);
  await a.locator("#btn-pause").click();
  const aFrame = await counterFrame(a);
  expect(aFrame).toBeGreaterThan(20);
  await expectShowing(a, aFrame);
  await expectShowing(b, 300);
  // B now seeks near A's position; A's next frames must still be A's.
  await seekWithSlider(b, aFrame + 1);
  await expectShowing(b, aFrame + 1);
  await seekWithSlider(a, aFrame + 5);
  await expectShowing(a, aFrame + 5);
});
