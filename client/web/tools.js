// Functions this page declares to the model, and runs itself when called.
//
// The server sends a toolCall to the client only for functions the client
// declared; everything else runs on the server, out of the page's sight.
// The page declares what only a browser knows or can do: the user's own
// clock and time zone (the server may sit in another one), and a card on
// screen for things better read than heard (a list, a number, a link).

export const DECLARATIONS = [
  {
    name: "get_local_time",
    description:
      "The current date, time and time zone where the user is (from their browser). " +
      "Use it for questions about the time, the date or the day of the week.",
    parameters: { type: "OBJECT", properties: {} },
  },
  {
    name: "show_note",
    description:
      "Show the user a short note on their screen, for things better read than heard: " +
      "a list, a number, an address, a snippet of code. Say a summary aloud as well.",
    parameters: {
      type: "OBJECT",
      properties: {
        title: { type: "STRING", description: "a few words" },
        text: { type: "STRING", description: "the note itself, plain text; new lines are kept" },
      },
      required: ["text"],
    },
  },
];

/**
 * Run one call; resolves to the `response` object of a FunctionResponse.
 * @param {{name: string, args?: object}} call
 * @param {{showNote: (title: string, text: string) => void, now?: () => Date}} page
 */
export async function runTool(call, page) {
  const args = call.args ?? {};
  switch (call.name) {
    case "get_local_time": {
      const now = (page.now ?? (() => new Date()))();
      const zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
      const offset = -now.getTimezoneOffset();
      const sign = offset >= 0 ? "+" : "-";
      const hours = String(Math.floor(Math.abs(offset) / 60)).padStart(2, "0");
      const minutes = String(Math.abs(offset) % 60).padStart(2, "0");
      return {
        output: {
          local_time: now.toLocaleString("en-GB", { hour12: false }),
          weekday: now.toLocaleDateString("en-GB", { weekday: "long" }),
          time_zone: zone,
          utc_offset: `${sign}${hours}:${minutes}`,
          iso: now.toISOString(),
        },
      };
    }
    case "show_note": {
      if (typeof args.text !== "string" || !args.text.trim()) return { error: "show_note needs a non-empty text" };
      page.showNote(typeof args.title === "string" ? args.title : "", args.text);
      return { output: "shown" };
    }
    default:
      return { error: `this page has no function named ${call.name}` };
  }
}
