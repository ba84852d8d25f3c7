console.log("main blueprint");
