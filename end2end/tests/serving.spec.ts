import { expect, Page, test } from "@playwright/test";

import { counterFrame, displayedPatternIndex, expectShowing, openPlayer } from "./helpers";

// Frames as GETs: the "Open frame as image" link is an ordinary URL of the exact frame, a frame
// seen once comes from the browser's cache, and on the GOP-250 video (long.mp4, 2400 frames, a
// keyframe every 250) a click on the chart paints the exact frame from the display proxy.
test.use({ viewport: { width: 1920, height: 1080 } });

async function videoId(page: Page, name: string): Promise<string> {
  await page.goto("/videos");
  await expect(page.locator("#library")).toHaveAttribute("data-hydrated", "true", { timeout: 20_000 });
  return (await page.locator(`tr.video[data-name="${name}"]`).getAttribute("data-id"))!;
}

test("Open frame as image opens exactly the frame on screen, as image/jpeg", async ({ page, context }) => {
  await openPlayer(page, "/?frame=123");
  await expectShowing(page, 123);
  const link = page.locator("#open-frame");
  const href = (await link.getAttribute("href"))!;
  expect(href).toMatch(/^\/frame\/[0-9a-f]{16}\/123\.jpg\?v=[0-9a-f]+$/);
  const [tab] = await Promise.all([context.waitForEvent("page"), link.click()]);
  await tab.waitForLoadState("load");
  expect(new URL(tab.url()).pathname).toBe(href.split("?")[0]);
  expect(await displayedPatternIndex(tab, "img")).toBe(123);
  await tab.close();
  const answer = await page.request.get(href);
  expect(answer.headers()["content-type"]).toBe("image/jpeg");
  expect(answer.headers()["cache-control"]).toContain("immutable");
});

test("a frame seen once is not fetched again", async ({ page }) => {
  await openPlayer(page, "/?frame=40");
  await expectShowing(page, 40);
  const slider = page.locator("#frame-slider");
  await slider.fill("60");
  await expectShowing(page, 60);
  await slider.fill("40");
  await expectShowing(page, 40);
  const fetches = await page.evaluate(() =>
    performance
      .getEntriesByType("resource")
      .filter((e) => /\/frame\/[0-9a-f]{16}\/40\.jpg/.test(e.name))
      .map((e) => (e as PerformanceResourceTiming).transferSize),
  );
  // Asked twice; the second answer came from the browser's cache (nothing transferred).
  expect(fetches.length).toBe(2);
  expect(fetches[0]).toBeGreaterThan(0);
  expect(fetches[1]).toBe(0);
});

test("a click on the chart of a GOP-250 video paints the exact frame (50 random clicks)", async ({ page }) => {
  // The proxy of the 2400-frame video may still be in the making (half a minute on 2 cores).
  test.setTimeout(300_000);
  const id = await videoId(page, "long.mp4");
  await openPlayer(page, `/?video=${id}`);
  await expect(page.locator("#chart")).toHaveAttribute("data-covered", "2400", { timeout: 120_000 });
  // The display proxy is made in the background when the video is first watched: wait for it
  // (unless the server runs without proxies, to measure clicks on the video itself).
  const withProxy = process.env.E2E_DISPLAY_PROXY !== "false";
  // The status line says how much of the video has fast seeking, until all of it has.
  if (withProxy) {
    const fast = page.locator("#fast-seeking");
    await expect(fast).toHaveAttribute("data-of", "2400", { timeout: 60_000 });
    await expect(fast).toHaveAttribute("data-frames", "2400", { timeout: 180_000 });
    await expect(fast).toContainText("Fast seeking everywhere");
  }
  let width = 200;
  if (withProxy) await expect
    .poll(
      async () => {
        width += 2; // a size not asked for before, so the server decodes it now
        const answer = await page.request.get(`/frame/${id}/0.jpg?w=${width}`);
        return answer.headers()["x-frame-source"];
      },
      { timeout: 180_000, intervals: [500] },
    )
    .toBe("proxy");
  const box = (await page.locator("#chart").boundingBox())!;
  const latencies: number[] = [];
  for (let i = 0; i < 55; i++) {
    // Inside the plotting area (the left edge holds the axis).
    const fraction = 0.12 + ((i * 0.618034) % 1) * 0.84;
    const before = await counterFrame(page);
    // Timed in the page: from the mousedown to the load of the <img> showing the new frame.
    // The listener is in place before the click is sent (on the document: the chart's canvas
    // may be drawn anew while the index refines).
    await page.evaluate(() => {
      const w = window as any;
      w.clickedAt = 0;
      const onDown = (e: Event) => {
        if ((e.target as Element).closest("#chart")) {
          w.clickedAt = performance.now();
          document.removeEventListener("mousedown", onDown, true);
        }
      };
      document.addEventListener("mousedown", onDown, true);
    });
    await page.mouse.click(box.x + box.width * fraction, box.y + box.height / 2);
    const ms = await page.evaluate(
      (before) =>
        new Promise<number>((resolve, reject) => {
          const w = window as any;
          const img = document.querySelector("#frame-view") as HTMLImageElement;
          const counter = document.querySelector("#frame-counter")!;
          const check = () => {
            const frame = counter.getAttribute("data-frame");
            if (w.clickedAt && frame !== String(before) && img.getAttribute("data-frame") === frame && img.complete) {
              resolve(performance.now() - w.clickedAt);
            } else requestAnimationFrame(check);
          };
          setTimeout(
            () =>
              reject(
                new Error(
                  `no new frame painted 10 s after the click (was ${before}; counter ${counter.getAttribute("data-frame")}, image ${img.getAttribute("data-frame")}, complete ${img.complete}, mousedown seen ${w.clickedAt > 0})`,
                ),
              ),
            10_000,
          );
          requestAnimationFrame(check);
        }),
      before,
    );
    const frame = await counterFrame(page);
    expect(frame).not.toBe(before);
    if (i >= 5) latencies.push(ms);
    if (i % 5 === 0) expect(await displayedPatternIndex(page)).toBe(frame);
  }
  latencies.sort((a, b) => a - b);
  const pct = (p: number) => latencies[Math.round((latencies.length - 1) * p)];
  console.log(
    `GOP-250 video${withProxy ? "" : " without its display proxy"}, click → exact frame painted (mousedown → <img> loaded), ${latencies.length} clicks: p50 ${pct(0.5).toFixed(1)} ms, p95 ${pct(0.95).toFixed(1)} ms, max ${pct(1).toFixed(1)} ms`,
  );
});
