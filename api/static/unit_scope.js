// The scope of a manager's monthly page (月度排名, 报送考核): which level is counted by default,
// and the units a manager may choose as the scope.
import { $, clear, h } from "/static/closeloop.js";

// A district counts its streets, a street its communities.
export function defaultLevel(who, unit) {
  const found = who.units.find((u) => u.id === unit);
  const type = found ? found.type : who.unit_type;
  return type === "district" ? "street" : "community";
}

// The district and streets the person may read, their own unit first if it is neither; a unit
// asked for in the address that is not among them is kept (the server says why it is refused).
export function drawUnits(who, chosen) {
  const select = clear($("#unit"));
  const scopes = who.units.filter((u) => u.type === "district" || u.type === "street");
  if (!scopes.some((u) => u.id === who.unit_id)) scopes.unshift({ id: who.unit_id, name: who.unit_name });
  for (const u of scopes) select.append(h("option", { value: u.id, selected: u.id === chosen, text: u.name }));
  if (chosen && !scopes.some((u) => u.id === chosen)) {
    select.append(h("option", { value: chosen, selected: true, text: chosen }));
  }
}
