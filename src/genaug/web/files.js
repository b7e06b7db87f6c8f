// Files chosen or dropped for an upload: reading dropped folders and sorting files into classes.

// The accepted types are the server's (GET /api/limits, set by setAcceptedTypes at start-up);
// these are what the pages use until then.
let imageExtensions = ['.png', '.jpg', '.jpeg'];
let archiveExtensions = ['.zip', '.tar', '.tar.gz', '.tgz'];

/** Take the server's lists of image and archive extensions (".png", ".tar.gz", ...). */
export function setAcceptedTypes(images, archives) {
  imageExtensions = [...images];
  archiveExtensions = [...archives];
}

const endsWithAny = (name, suffixes) => suffixes.some((s) => name.toLowerCase().endsWith(s));
/** Whether a file name is an image the server reads. */
export const isImageName = (name) => endsWithAny(name, imageExtensions);
/** Whether a file name is an archive the server unpacks. */
export const isArchiveName = (name) => endsWithAny(name, archiveExtensions);
/** "png, jpg, …" for help texts. */
export const imageTypesText = () => imageExtensions.map((s) => s.slice(1)).join(', ');
export const archiveTypesText = () => archiveExtensions.join(', ');
/** The `accept` attribute of a file input for images or archives. */
export const imageAccept = () => imageExtensions.join(',');
export const archiveAccept = () => archiveExtensions.join(',');

/** Read all files of a dropped directory entry: [{file, path}] with path relative to the drop. */
async function readEntry(entry) {
  if (entry.isFile) {
    const file = await new Promise((resolve, reject) => entry.file(resolve, reject));
    return [{ file, path: entry.fullPath.replace(/^\//, '') }];
  }
  if (!entry.isDirectory) return [];
  const reader = entry.createReader();
  const children = [];
  for (;;) {
    const batch = await new Promise((resolve, reject) => reader.readEntries(resolve, reject));
    if (!batch.length) break;
    children.push(...batch);
  }
  const nested = await Promise.all(children.map(readEntry));
  return nested.flat();
}

/** Files of a drop event: [{file, path}] (path from folders when the browser gives entries). */
export async function droppedFiles(event) {
  const items = [...(event.dataTransfer.items || [])];
  const entries = items.map((item) => (item.webkitGetAsEntry ? item.webkitGetAsEntry() : null)).filter(Boolean);
  if (entries.length) return (await Promise.all(entries.map(readEntry))).flat();
  return [...(event.dataTransfer.files || [])].map((file) => ({ file, path: file.name }));
}

/** Split folder files into per-class images and ignored files: class = first-level subfolder. */
export function classifyFolder(items) {
  let list = items.map(({ file, path }) => ({ file, parts: (path || file.webkitRelativePath || file.name).split('/').filter(Boolean) }));
  // A drop of class folders themselves (no common root): give them one.
  if (list.length && !list.some((x) => x.parts.length >= 3)) list = list.map((x) => ({ ...x, parts: ['dropped', ...x.parts] }));
  const images = [];
  const ignored = [];
  for (const { file, parts } of list) {
    const shown = parts.join('/');
    if (parts.some((p) => p.startsWith('.'))) ignored.push({ name: shown, reason: 'hidden file' });
    else if (!isImageName(file.name)) ignored.push({ name: shown, reason: `not an image this server reads (${imageTypesText()})` });
    else if (parts.length < 3) ignored.push({ name: shown, reason: 'not inside a class subfolder' });
    else images.push({ cls: parts[1], file });
  }
  return { images, ignored };
}
