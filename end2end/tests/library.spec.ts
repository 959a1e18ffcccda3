import { expect, test } from "@playwright/test";
import { readFileSync } from "fs";
import { counterFrame, displayedPatternIndex, openPlayer } from "./helpers";

const target = process.env.CARGO_TARGET_DIR ?? `${process.env.HOME}/.cache/clip-investigator/target`;

async function openLibrary(page) {
  await page.goto("/videos");
  await expect(page.locator("#library")).toHaveAttribute("data-hydrated", "true", { timeout: 20_000 });
}

test("the list shows each video with duration, resolution and index state, and opens one by id", async ({ page }) => {
  await openLibrary(page);
  const rows = page.locator("tr.video");
  await expect(rows.first()).toBeVisible();
  expect(await rows.count()).toBeGreaterThanOrEqual(2);
  const first = rows.nth(0);
  await expect(first).toHaveAttribute("data-name", "pattern720.mp4");
  await expect(first).toContainText("(config)");
  await expect(first).toContainText("00:20.00");
  await expect(first).toContainText("1280×720");
  const short = page.locator('tr.video[data-name="short.mp4"]');
  await expect(short).toContainText("00:03.00");
  await expect(short.locator("td.indexed")).toHaveText(/^(no|partly|yes)$/);
  const id = await short.getAttribute("data-id");
  expect(id).toMatch(/^[0-9a-f]{16}$/);

  await short.locator("a").click();
  await expect(page).toHaveURL(new RegExp(`[?&]video=${id}`));
  await expect(page.locator("#player")).toHaveAttribute("data-hydrated", "true", { timeout: 20_000 });
  await expect(page.locator("#video-name")).toContainText("short.mp4");
  // The opened video indexes (after its turn), then the list says so.
  await expect(page.locator("#index-status")).toHaveAttribute("data-state", "done", { timeout: 45_000 });
  await openLibrary(page);
  await expect(page.locator('tr.video[data-name="short.mp4"] td.indexed')).toHaveText("yes");
});

test("a share link names the video and the frame", async ({ page }) => {
  await openLibrary(page);
  const id = await page.locator('tr.video[data-name="short.mp4"]').getAttribute("data-id");
  await openPlayer(page, `/?video=${id}&frame=45`);
  await expect.poll(() => counterFrame(page)).toBe(45);
  await expect.poll(() => displayedPatternIndex(page), { timeout: 10_000 }).toBe(45);
  // The default video's page writes its id into the address bar, so its links name it too.
  await openPlayer(page, "/?frame=3");
  await expect(page).toHaveURL(/[?&]video=[0-9a-f]{16}/);
});

test("an unknown id says so instead of showing anything", async ({ page }) => {
  await page.goto("/?video=ffffffffffffffff");
  await expect(page.locator("#error")).toContainText("no video");
  await page.goto("/?video=..%2F..%2Fetc%2Fpasswd");
  await expect(page.locator("#error")).toContainText("not a video id");
});

test("uploading adds a playable video; a file that is not a video is refused", async ({ page }) => {
  await openLibrary(page);
  await page.locator("#upload-file").setInputFiles({
    name: "uploaded clip.mp4",
    mimeType: "video/mp4",
    buffer: readFileSync(`${target}/e2e/short.mp4`),
  });
  await page.locator("#upload button").click();
  await expect(page.locator("#upload-message")).toContainText("uploaded clip.mp4 was added", { timeout: 30_000 });
  const row = page.locator('tr.video[data-name="uploaded clip.mp4"]');
  await expect(row).toContainText("00:03.00");
  await row.locator("a").click();
  await expect(page.locator("#player")).toHaveAttribute("data-hydrated", "true", { timeout: 20_000 });
  await expect.poll(() => displayedPatternIndex(page), { timeout: 10_000 }).toBe(0);

  await openLibrary(page);
  await page.locator("#upload-file").setInputFiles({
    name: "notes.mp4",
    mimeType: "video/mp4",
    buffer: Buffer.from("this is text, not a video\n".repeat(100)),
  });
  await page.locator("#upload button").click();
  await expect(page.locator("#upload-message")).toContainText("not a video this server can play");
  await expect(page.locator('tr.video[data-name="notes.mp4"]')).toHaveCount(0);
});
