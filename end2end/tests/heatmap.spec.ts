import { expect, Page, test } from "@playwright/test";

import { expectShowing, openPlayer } from "./helpers";

// The heatmap over the frame (why it scores as it does), on the e2e video: 1280x720 (16:9),
// the tiny CLIP fixtures (32x32 input, 8-pixel patches). Their weights are random: these tests
// check where and over what the map is drawn, not what it says.
test.use({ viewport: { width: 1600, height: 1000 } });

// The tiny model's processor resizes 1280x720 to 56x32 and keeps the middle 32 columns.
const SCALE = 1280 / 56;
const CROP = { left: 12 * SCALE, top: 0, width: 32 * SCALE, height: 720 };

async function openIndexed(page: Page, path: string) {
  await openPlayer(page, path);
  await expect(page.locator("#index-status")).toHaveAttribute("data-state", "done", { timeout: 120_000 });
}

async function clickChartAt(page: Page, frame: number) {
  const p = await page.evaluate((f) => (window as any).clipChart.pointOfFrame(f), frame);
  expect(p).not.toBeNull();
  await page.mouse.click(p[0], p[1]);
}

/** RGBA of the overlay canvas at frame pixel (x, y). */
async function overlayPixel(page: Page, x: number, y: number): Promise<number[]> {
  return page.evaluate(
    ([x, y]) => {
      const canvas = document.querySelector("#heat-overlay") as HTMLCanvasElement;
      return Array.from(canvas.getContext("2d")!.getImageData(Math.round(x), Math.round(y), 1, 1).data);
    },
    [x, y],
  );
}

test("the heatmap is drawn over the clicked frame, inside the model's crop of a 16:9 frame", async ({ page }) => {
  await openIndexed(page, "/");
  await clickChartAt(page, 237);
  await expectShowing(page, 237);
  const overlay = page.locator("#heat-overlay");
  await expect(overlay).toBeHidden();
  await page.click("#heat-toggle");
  await expect(overlay).toBeVisible({ timeout: 20_000 });
  // Over exactly the frame on screen, in the same box as the image.
  await expect(overlay).toHaveAttribute("data-frame", "237");
  await expect(page.locator("#frame-view")).toHaveAttribute("data-frame", "237");
  expect(await overlay.boundingBox()).toEqual(await page.locator("#frame-view").boundingBox());
  expect(await overlay.evaluate((c: HTMLCanvasElement) => [c.width, c.height])).toEqual([1280, 720]);
  // The crop outline is the model's crop.
  for (const [key, value] of Object.entries(CROP)) {
    const attribute = Number(await overlay.getAttribute(`data-crop-${key}`));
    expect(Math.abs(attribute - value), key).toBeLessThan(1e-6);
  }
  // Its pixels: dimmed black outside the crop, the map inside at the chosen opacity, a white
  // outline on its edge.
  const right = CROP.left + CROP.width;
  for (const x of [CROP.left - 12, right + 12]) {
    const [r, g, b, a] = await overlayPixel(page, x, 650);
    expect([r, g, b]).toEqual([0, 0, 0]);
    expect(Math.abs(a - 0.65 * 255)).toBeLessThan(2);
  }
  for (const x of [CROP.left + 40, CROP.left + CROP.width / 2, right - 40]) {
    const [r, g, b, a] = await overlayPixel(page, x, 650);
    expect(Math.abs(a - 0.55 * 255), `alpha at ${x}`).toBeLessThan(2);
    expect(Math.max(r, g, b), `a heat colour at ${x}`).toBeGreaterThan(100);
  }
  const [or, og, ob, oa] = await overlayPixel(page, CROP.left + 1, 650);
  expect([or, og, ob, oa]).toEqual([255, 255, 255, 255]);
  await expect(page.locator("#heat-note")).toContainText("left and right edges never count");
  await expect(page.locator("#heat-status")).toHaveAttribute("data-state", "ready");
  expect(new URL(page.url()).searchParams.get("heat")).toBe("wall");

  // Another click: the map follows to that frame, never drawn over the wrong one.
  await clickChartAt(page, 412);
  await expectShowing(page, 412);
  await expect(overlay).toHaveAttribute("data-frame", "412", { timeout: 20_000 });

  // Hovering reads the value under the pointer, or says the model does not see it.
  const box = (await overlay.boundingBox())!;
  await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
  await expect(page.locator("#heat-readout")).toContainText("relevance");
  await page.mouse.move(box.x + 5, box.y + box.height / 2);
  await expect(page.locator("#heat-readout")).toContainText("does not see");

  // Opacity: the map's alpha follows the slider.
  await page.locator("#heat-opacity").fill("100");
  await expect.poll(async () => (await overlayPixel(page, CROP.left + 40, 650))[3]).toBe(255);
});

test("playing hides the map, pausing computes it for the paused frame, and links carry it", async ({ page }) => {
  await openIndexed(page, "/?frame=100&heat=wall&compare=tiny-clip-gelu");
  const overlay = page.locator("#heat-overlay");
  await expect(overlay).toHaveAttribute("data-frame", "100", { timeout: 20_000 });
  await expect(overlay).toHaveAttribute("data-model", "tiny-clip");
  await page.click("#btn-play");
  await expect(overlay).toBeHidden();
  await expect(page.locator("#heat-status")).toHaveAttribute("data-state", "playing");
  await page.waitForTimeout(700);
  await page.click("#btn-pause");
  const paused = await page.locator("#frame-counter").getAttribute("data-frame");
  expect(Number(paused)).toBeGreaterThan(100);
  await expect(overlay).toHaveAttribute("data-frame", paused!, { timeout: 20_000 });
  await expect(page.locator("#frame-view")).toHaveAttribute("data-frame", paused!);

  // The compared model's map, and the link says so.
  await page.selectOption("#heat-model", "b");
  await expect(overlay).toHaveAttribute("data-model", "tiny-clip-gelu", { timeout: 20_000 });
  await expect.poll(() => new URL(page.url()).searchParams.get("heatm")).toBe("b");
  // From the first layer on.
  await page.selectOption("#heat-layer", "0");
  await expect(overlay).toHaveAttribute("data-start-layer", "0", { timeout: 20_000 });
  await expect(page.locator("#heat-status")).toContainText("layers 0–1 of 2");

  // Off: no map, and the link forgets it.
  await page.click("#heat-toggle");
  await expect(overlay).toBeHidden();
  await expect.poll(() => new URL(page.url()).searchParams.get("heat")).toBeNull();
});

test("bad explain requests are refused with 400 and the reason", async ({ page }) => {
  await openIndexed(page, "/?frame=10");
  await page.evaluate(async () => {
    // The server refuses bad requests with 400 and a reason (never a 500).
    const post = (body: object) =>
      fetch("/api/explain", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
    const video = new URL(location.href).searchParams.get("video");
    const answers = await Promise.all([
      post({ video, model: null, frame: 100000, prompt: "wall", start_layer: null }),
      post({ video, model: null, frame: 1, prompt: "", start_layer: null }),
      post({ video, model: null, frame: 1, prompt: "wall", start_layer: 9 }),
    ]);
    (window as any).explainStatuses = await Promise.all(answers.map(async (a) => [a.status, await a.text()]));
  });
  const statuses: [number, string][] = await page.evaluate(() => (window as any).explainStatuses);
  expect(statuses.map((s) => s[0])).toEqual([400, 400, 400]);
  expect(statuses[0][1]).toContain("out of range");
  expect(statuses[1][1]).toContain("empty");
  expect(statuses[2][1]).toContain("0 to 1");
});
