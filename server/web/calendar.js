// An event as an iCalendar file (RFC 5545) for the fan's calendar app:
// built in the page from what "Meus ingressos" already shows, so it works
// with no further request (and offline, once the page is loaded).

/** Text escaped for a property value (RFC 5545 3.3.11). */
function text(value) {
  return String(value ?? "").replace(/[\\;,]/g, (c) => "\\" + c).replace(/\r?\n/g, "\\n");
}

/** A UTC date-time, `20261201T203000Z`. */
function utc(ms) {
  return new Date(ms).toISOString().replace(/[-:]/g, "").replace(/\.\d{3}/, "");
}

/** Folds a content line at 75 octets (RFC 5545 3.1), never inside a
 * UTF-8 character: continuation lines start with a space. */
function fold(line) {
  const encoder = new TextEncoder();
  const out = [];
  let current = "", size = 0;
  for (const char of line) {
    const bytes = encoder.encode(char).length;
    const limit = out.length === 0 ? 75 : 74;
    if (size + bytes > limit) { out.push(current); current = ""; size = 0; }
    current += char; size += bytes;
  }
  out.push(current);
  return out.join("\r\n ");
}

/** The calendar file of one order's event: its name, venue and start, the
 * order number in the description, a reminder a day before. `uid` must be
 * stable for the order so that adding it twice updates one entry. */
export function calendarFile({ uid, name, venue, startsAtMs, description, nowMs = Date.now() }) {
  const lines = [
    "BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//IngressoJa//Tickets//PT", "CALSCALE:GREGORIAN", "METHOD:PUBLISH",
    "BEGIN:VEVENT", `UID:${text(uid)}`, `DTSTAMP:${utc(nowMs)}`, `DTSTART:${utc(startsAtMs)}`,
    `SUMMARY:${text(name)}`, `LOCATION:${text(venue)}`, `DESCRIPTION:${text(description)}`,
    "BEGIN:VALARM", "ACTION:DISPLAY", `DESCRIPTION:${text(name)}`, "TRIGGER:-P1D", "END:VALARM",
    "END:VEVENT", "END:VCALENDAR",
  ];
  return lines.map(fold).join("\r\n") + "\r\n";
}
