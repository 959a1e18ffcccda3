import { expect, Page } from "@playwright/test";

// The test video (scripts/e2e-server.sh): 1280x720, 30 fps, 600 frames, each carrying its
// index as 16 black/white blocks in the top ninth of the image (block 0 = most significant bit).
export const FRAMES = 600;

export async function openPlayer(page: Page, path = "/") {
  await page.goto(path);
  await expect(page.locator("#player")).toHaveAttribute("data-hydrated", "true", { timeout: 20_000 });
}

/** Decodes the index pattern from the pixels of the image the page is showing (or of the image
 * `selector` names). */
export async function displayedPatternIndex(page: Page, selector = "#frame-view"): Promise<number> {
  return page.evaluate(async (selector) => {
    const img = document.querySelector(selector) as HTMLImageElement;
    if (!img.complete) await img.decode();
    const canvas = document.createElement("canvas");
    canvas.width = img.naturalWidth;
    canvas.height = img.naturalHeight;
    const ctx = canvas.getContext("2d")!;
    ctx.drawImage(img, 0, 0);
    const blockW = canvas.width / 16;
    const bandH = canvas.height / 9;
    let value = 0;
    for (let bit = 0; bit < 16; bit++) {
      const x = Math.round(bit * blockW + blockW / 4);
      const y = Math.round(bandH / 4);
      const w = Math.max(1, Math.round(blockW / 2));
      const h = Math.max(1, Math.round(bandH / 2));
      const data = ctx.getImageData(x, y, w, h).data;
      let sum = 0;
      for (let i = 0; i < data.length; i += 4) sum += (data[i] + data[i + 1] + data[i + 2]) / 3;
      value = value * 2 + (sum / (data.length / 4) > 128 ? 1 : 0);
    }
    return value;
  }, selector);
}

export async function counterFrame(page: Page): Promise<number> {
  return Number(await page.locator("#frame-counter").getAttribute("data-frame"));
}

/** Waits until the image shows `frame` and checks its pixels say so too. */
export async function expectShowing(page: Page, frame: number) {
  await expect(page.locator("#frame-counter")).toHaveAttribute("data-frame", String(frame));
  await expect(page.locator("#frame-view")).toHaveAttribute("data-frame", String(frame), { timeout: 10_000 });
  expect(await displayedPatternIndex(page)).toBe(frame);
}

