document.getElementById("app").textContent = "Shop";
